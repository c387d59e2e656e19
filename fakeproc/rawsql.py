"""The few statements of the charge path, run straight on the database driver.

They are built with SQLAlchemy like every other statement and compiled once per dialect; only
their execution skips SQLAlchemy's per-call machinery, which costs several times what SQLite
itself does for a small insert. Values are converted here the way the column types would.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy's DateTime stores time in SQLite


class RawStatement:
    """One statement compiled per dialect, executed on the connection's driver connection."""

    def __init__(self, statement: ClauseElement, keys: Iterable[str], json_keys: Iterable[str]):
        self.statement = statement
        self.keys = tuple(keys)
        self.json_keys = frozenset(json_keys)
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}

    def execute(self, conn: Connection, values: dict[str, Any]) -> Any:
        """Run with `values` (every key of `keys`); returns the driver's cursor."""
        dialect = conn.dialect.name
        if dialect not in self._compiled:
            compiled = self.statement.compile(dialect=conn.dialect, column_keys=list(self.keys))
            order = tuple(compiled.positiontup) if compiled.positional else None
            # Literals inside the statement (the 1 of "count + 1") are binds with a value.
            constants = {name: bind.value for name, bind in compiled.binds.items()
                         if name not in self.keys}
            self._compiled[dialect] = (compiled.string, order, constants)
        sql, order, constants = self._compiled[dialect]
        convert = _to_sqlite if dialect == "sqlite" else _to_postgresql
        bound = {k: convert(values[k], k in self.json_keys) for k in self.keys} | constants
        if not conn.in_transaction():
            conn.begin()  # so that the connection's commit() commits what the driver did
        driver = conn.connection.driver_connection
        return driver.execute(sql, tuple(bound[k] for k in order) if order else bound)


def _to_sqlite(value: Any, is_json: bool) -> Any:
    if is_json:
        return json.dumps(value)
    if isinstance(value, datetime):
        return _naive_utc(value).strftime(_SQLITE_TIME)
    return value


def _to_postgresql(value: Any, is_json: bool) -> Any:
    if is_json:
        from psycopg.types.json import Jsonb

        return Jsonb(value)
    if isinstance(value, datetime):
        return _naive_utc(value)
    return value


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment
