"""The few statements of the charge path, run straight on the database driver.

They are built with SQLAlchemy like every other statement and compiled once per dialect; only
their execution skips SQLAlchemy's per-call machinery, which costs several times what SQLite
itself does for a small insert. Values are converted here the way the column types would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # parameter names, in the order a positional driver wants them
    positional: bool
    constants: dict[str, Any]  # literals inside the statement (the 1 of "count + 1")
    converters: tuple[tuple[str, Callable[[Any], Any]], ...]


class RawStatement:
    """One statement compiled per dialect, executed on the connection's driver connection."""

    def __init__(self, statement: ClauseElement, keys: Iterable[str],
                 json_keys: Iterable[str] = (), time_keys: Iterable[str] = ()):
        self.statement = statement
        self.keys = tuple(keys)
        self.json_keys = frozenset(json_keys)
        self.time_keys = frozenset(time_keys)
        self._compiled: dict[str, _Compiled] = {}

    def execute(self, conn: Connection, values: dict[str, Any]) -> Any:
        """Run with `values` (every key of `keys`); returns the driver's cursor."""
        compiled = self._compiled.get(conn.dialect.name) or self._compile(conn)
        values = {**values, **compiled.constants}
        for key, convert in compiled.converters:
            if values[key] is not None or key in self.json_keys:
                values[key] = convert(values[key])
        if not conn.in_transaction():
            conn.begin()  # so that the connection's commit() commits what the driver did
        params = [values[name] for name in compiled.names] if compiled.positional else values
        return conn.connection.driver_connection.execute(compiled.sql, params)

    def _compile(self, conn: Connection) -> _Compiled:
        compiled = self.statement.compile(dialect=conn.dialect, column_keys=list(self.keys))
        sqlite = conn.dialect.name == "sqlite"
        to_json, to_time = (json.dumps, _sqlite_time) if sqlite else (_jsonb, _naive_utc)
        converters = tuple((key, to_json) for key in self.json_keys) + \
            tuple((key, to_time) for key in self.time_keys)
        result = _Compiled(
            compiled.string,
            tuple(compiled.positiontup or ()) if compiled.positional else (),
            compiled.positional,
            {name: bind.value for name, bind in compiled.binds.items() if name not in self.keys},
            converters)
        self._compiled[conn.dialect.name] = result
        return result


def _sqlite_time(moment: datetime) -> str:
    # The text form SQLAlchemy's DateTime uses in SQLite, so that both read each other's rows.
    return _naive_utc(moment).isoformat(" ", "microseconds")


def _jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is timezone.utc:
        return moment.replace(tzinfo=None)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment
