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
    """A connection taken from the pool on first use and given back by `release`.

    On SQLite a unit that writes joins the group of writers sharing one transaction (see
    `sqlite_write_turns`) and uses the group's connection until it commits or releases."""

    def __init__(self) -> None:
        self._connection: Connection | None = None
        # While this unit holds a turn to write (SQLite): the transaction it writes in.
        self._group: sqlite_write_turns.Group | None = None
        self.patient = False  # its writes may wait behind other requests' (see turns)
        self.info: dict[str, Any] = {}

    def connection(self) -> Connection:
        if self._group is not None:
            return self._group.connection
        if self._connection is None:
            self._connection = db.engine.connect()
        return self._connection

    def writer(self) -> Connection:
        """The connection, inside a transaction that holds the database's write lock.

        On SQLite the unit first waits for its turn among the process's writers (see
        `sqlite_write_turns`): the turn comes with the transaction of the writers before it,
        or it begins one and takes the lock. It holds both until it commits."""
        if self._group is None and db.engine.dialect.name == "sqlite":
            # The turn first, then a connection: writers queued for their turn hold none.
            writers = sqlite_write_turns.turns_for(db.engine)
            group = writers.acquire(self.patient)
            try:
                if group is None:
                    group = self._begin_group()
                group.join()
            except BaseException:
                writers.end(group)
                raise
            self._group = group
        return self.connection()

    def _begin_group(self) -> sqlite_write_turns.Group:
        connection = self.connection()
        if not connection.in_transaction():
            connection.begin()
        sqlite_write_turns.lock_for_writing(connection.connection.driver_connection)
        self._connection = None  # the group's now: whoever ends it gives it back
        return sqlite_write_turns.Group(connection)

    def _leave_group(self, done: bool) -> None:
        """Keep (`done`) or undo this unit's writes, then pass the turn on with the open
        transaction, or commit it for every writer in it. A unit that handed its writes over
        waits for their commit before it may answer."""
        group, self._group = self._group, None
        assert group is not None
        writers = sqlite_write_turns.turns_for(db.engine)
        try:
            group.leave(done)
        except BaseException:
            writers.end(group)
            raise
        if writers.end(group) and done:
            group.wait()

    def commit(self) -> None:
        if self._group is not None:
            self._leave_group(done=True)
        elif self._connection is not None:
            self._connection.commit()

    def release(self) -> None:
        """Commit and give the connection back, before a long wait or sleep."""
        self.commit()
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self.info.clear()

    def close(self) -> None:
        try:
            if self._group is not None:
                self._leave_group(done=False)
        finally:
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
