"""Turns at writing to a SQLite database, within one process and across processes.

SQLite lets one connection write at a time, and its busy handler waits for the lock by
sleeping inside the driver. Under gevent every request of a worker shares one thread, so that
sleep would stall all of them. Instead, the writers of a process queue for their turn, and the
one whose turn it is takes SQLite's lock with `BEGIN IMMEDIATE`, polling with pauses in which
other requests run.

A writer is *prompt* (the default: someone is waiting for its answer now) or *patient* (a
request that will be held for seconds anyway, such as a delayed charge). Prompt writers go
first, so a burst of hundreds of held requests does not hold up the fresh ones behind it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections import deque
from typing import Any

# How long a writer waits for SQLite's lock before giving up, as busy_timeout would.
LOCK_TIMEOUT = 30.0
_BUSY_TIMEOUT_MS = int(LOCK_TIMEOUT * 1000)


class Turns:
    """The right to write, one holder at a time: prompt writers first, then patient ones,
    each in order of arrival."""

    def __init__(self) -> None:
        self._state = threading.Lock()  # guards the fields below, held only briefly
        self._held = False
        self._prompt: deque[threading.Lock] = deque()
        self._patient: deque[threading.Lock] = deque()

    def acquire(self, patient: bool = False) -> None:
        with self._state:
            if not self._held:
                self._held = True
                return
            # A lock taken once and waited on: whoever ends the current turn releases it,
            # handing the turn over.
            baton = threading.Lock()
            baton.acquire()
            (self._patient if patient else self._prompt).append(baton)
        try:
            baton.acquire()
        except BaseException:
            with self._state:
                queue = self._patient if patient else self._prompt
                if baton in queue:  # not handed over yet: just leave the line
                    queue.remove(baton)
                    raise
            self.release()  # handed over as this waiter was interrupted: pass it on
            raise

    def release(self) -> None:
        with self._state:
            if self._prompt:
                self._prompt.popleft().release()
            elif self._patient:
                self._patient.popleft().release()
            else:
                self._held = False


# One per database engine and process, made on first use: under gevent that is after the
# worker patched `threading`, so that waiting for a turn lets other requests run.
_turns: weakref.WeakKeyDictionary[Any, Turns] = weakref.WeakKeyDictionary()


def turns_for(engine: Any) -> Turns:
    turns = _turns.get(engine)
    if turns is None:
        turns = _turns.setdefault(engine, Turns())
    return turns


def lock_for_writing(driver: sqlite3.Connection) -> None:
    """Begin a transaction holding SQLite's write lock, waiting for other processes'
    writers cooperatively."""
    if driver.in_transaction:  # pysqlite opens a transaction only for a write: lock held
        return
    driver.execute("PRAGMA busy_timeout=0")
    try:
        pause, give_up_at = 0.0001, time.monotonic() + LOCK_TIMEOUT
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
        driver.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
