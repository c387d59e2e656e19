"""Units of work on a plain connection, for the charge path.

The processor runs each attempt on a connection of its own rather than the ORM session: the
session's bookkeeping costs more than the few statements an attempt needs. Code that runs both
inside and outside an attempt asks `connection()` and gets whichever is current.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
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
        self._turn: threading.Lock | None = None
        self.info: dict[str, Any] = {}

    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = db.engine.connect()
        return self._connection

    def writer(self) -> Connection:
        """The connection, inside a transaction that holds the database's write lock.

        On SQLite the lock is taken up front and waited for cooperatively: SQLite's own busy
        handler sleeps inside the driver, which would stall every other request of the
        process (they share one thread under gevent) for up to 100 ms at a time."""
        if self._turn is None and db.engine.dialect.name == "sqlite":
            # The turn first, then a connection: writers queued for their turn hold none.
            turn = _turn_for(db.engine)
            turn.acquire()
            self._turn = turn
            connection = self.connection()
            if not connection.in_transaction():
                connection.begin()
            _lock_for_writing(connection.connection.driver_connection)
            return connection
        return self.connection()

    def _end_turn(self) -> None:
        if self._turn is not None:
            self._turn, turn = None, self._turn
            turn.release()

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


# Writers of one process take turns (first come, first served) before they ask SQLite for the
# lock, so that only one of them polls for it. Created on first use: under gevent that is after
# the worker patched `threading`.
_turns: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()


def _turn_for(engine: Any) -> threading.Lock:
    turn = _turns.get(engine)
    if turn is None:
        turn = _turns.setdefault(engine, threading.Lock())
    return turn


# How long a writer waits for SQLite's write lock before giving up, as busy_timeout would.
WRITE_LOCK_TIMEOUT = 30.0


def _lock_for_writing(driver: sqlite3.Connection) -> None:
    if driver.in_transaction:  # pysqlite opens a transaction only for a write: lock held
        return
    driver.execute("PRAGMA busy_timeout=0")
    try:
        pause, give_up_at = 0.0001, time.monotonic() + WRITE_LOCK_TIMEOUT
        while True:
            try:
                driver.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > give_up_at:
                    raise
            time.sleep(pause)  # a greenlet switch under gevent
            pause = min(pause * 2, 0.0005)
    finally:
        driver.execute("PRAGMA busy_timeout=30000")


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
