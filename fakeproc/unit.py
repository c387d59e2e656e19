"""Units of work on a plain connection, for the charge path.

The processor runs each attempt on a connection of its own rather than the ORM session: the
session's bookkeeping costs more than the few statements an attempt needs. Code that runs both
inside and outside an attempt asks `connection()` and gets whichever is current.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy.engine import Connection

from .models import db

_current: ContextVar[Unit | None] = ContextVar("fakeproc_unit", default=None)


class Unit:
    """A connection taken from the pool on first use and given back by `release`."""

    def __init__(self) -> None:
        self._connection: Connection | None = None
        self.info: dict[str, Any] = {}

    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = db.engine.connect()
        return self._connection

    def commit(self) -> None:
        if self._connection is not None:
            self._connection.commit()

    def release(self) -> None:
        """Commit and give the connection back, before a long wait or sleep."""
        if self._connection is not None:
            self._connection.commit()
            self._connection.close()
            self._connection = None
        self.info.clear()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.rollback()
            self._connection.close()
            self._connection = None


@contextmanager
def unit() -> Iterator[Unit]:
    """Run the block on a unit of work (the current one, if any); what the unit did not
    commit is rolled back when the outermost block ends."""
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    current = Unit()
    token = _current.set(current)
    try:
        yield current
    finally:
        _current.reset(token)
        current.close()


def connection() -> Connection:
    """The current unit's connection, else the ORM session's."""
    current = _current.get()
    return current.connection() if current is not None else db.session.connection()


def info() -> dict[str, Any]:
    """Per-unit scratch space (per session outside a unit): cleared when the unit releases."""
    current = _current.get()
    return current.info if current is not None else db.session.info


def commit() -> None:
    current = _current.get()
    if current is not None:
        current.commit()
    else:
        db.session.commit()


def release() -> None:
    current = _current.get()
    if current is not None:
        current.release()
    else:
        db.session.commit()
        db.session.close()
