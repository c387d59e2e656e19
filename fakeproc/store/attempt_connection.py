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

from . import sqlite_write_turns
from .models import db

_current: ContextVar[Unit | None] = ContextVar("fakeproc_unit", default=None)


class Unit:
    """A connection taken from the pool on first use and given back by `release`."""

    def __init__(self) -> None:
        self._connection: Connection | None = None
        self._turns: sqlite_write_turns.Turns | None = None  # while this unit holds a turn to write
        self.patient = False  # its writes may wait behind other requests' (see turns)
        self.info: dict[str, Any] = {}

    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = db.engine.connect()
        return self._connection

    def writer(self) -> Connection:
        """The connection, inside a transaction that holds the database's write lock.

        On SQLite the unit first waits for its turn among the process's writers (see
        `turns`), then takes the lock; it holds both until it commits."""
        if self._turns is None and db.engine.dialect.name == "sqlite":
            # The turn first, then a connection: writers queued for their turn hold none.
            writers = sqlite_write_turns.turns_for(db.engine)
            writers.acquire(self.patient)
            self._turns = writers
            connection = self.connection()
            if not connection.in_transaction():
                connection.begin()
            sqlite_write_turns.lock_for_writing(connection.connection.driver_connection)
            return connection
        return self.connection()

    def _end_turn(self) -> None:
        if self._turns is not None:
            self._turns, writers = None, self._turns
            writers.release()

    def commit(self) -> None:
        if self._connection is not None:
            self._connection.commit()
        self._end_turn()

    def release(self) -> None:
        """Commit and give the connection back, before a long wait or sleep."""
        if self._connection is not None:
            self._connection.commit()
            self._connection.close()
            self._connection = None
        self._end_turn()
        self.info.clear()

    def close(self) -> None:
        try:
            if self._connection is not None:
                self._connection.rollback()
                self._connection.close()
                self._connection = None
        finally:
            self._end_turn()


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


def be_patient(patient: bool = True) -> None:
    """Let the current unit's writes wait behind prompt ones (a request held for seconds)."""
    current = _current.get()
    if current is not None:
        current.patient = patient


def writer() -> Connection:
    """The current unit's connection holding the write lock, else the ORM session's."""
    current = _current.get()
    return current.writer() if current is not None else db.session.connection()


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
