"""Turns at writing to a SQLite database, within one process and across processes.

SQLite lets one connection write at a time, and its busy handler waits for the lock by
sleeping inside the driver. Under gevent every request of a worker shares one thread, so that
sleep would stall all of them. Instead, the writers of a process queue for their turn, and the
one whose turn it is takes SQLite's lock with `BEGIN IMMEDIATE`, polling with pauses in which
other requests run.

A writer is *prompt* (the default: someone is waiting for its answer now) or *patient* (a
request that will be held for seconds anyway, such as a delayed charge). Prompt writers go
first, so a burst of hundreds of held requests does not hold up the fresh ones behind it.

Writers of consecutive turns share one SQLite transaction (`Group`): a writer that is done
while others wait for their turn hands the open transaction over with the turn instead of
committing it, and the last writer of the chain commits for all. Each writer's answer still
waits for that commit, so every charge is durable before it is answered; a busy worker pays
for one lock, one commit and one hand-over between processes per group rather than per write.
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


class _Baton:
    """A writer's place in line: a lock taken once and waited on, released by whoever hands
    the turn over, with what comes with the turn."""

    __slots__ = ("lock", "carried")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.carried: Group | None = None


class Turns:
    """The right to write, one holder at a time: prompt writers first, then patient ones,
    each in order of arrival."""

    def __init__(self) -> None:
        self._state = threading.Lock()  # guards the fields below, held only briefly
        self._held = False
        self._prompt: deque[_Baton] = deque()
        self._patient: deque[_Baton] = deque()

    def acquire(self, patient: bool = False) -> Group | None:
        """Wait for the turn; returns the open transaction handed over with it, if any."""
        with self._state:
            if not self._held:
                self._held = True
                return None
            baton = _Baton()
            (self._patient if patient else self._prompt).append(baton)
        try:
            baton.lock.acquire()
        except BaseException:
            with self._state:
                queue = self._patient if patient else self._prompt
                if baton in queue:  # not handed over yet: just leave the line
                    queue.remove(baton)
                    raise
            self.end(baton.carried)  # handed over as this writer was interrupted: pass it on
            raise
        return baton.carried

    def hand_over(self, group: Group) -> bool:
        """Give the turn and the open `group` to the next writer in line; False (the turn
        still held) when nobody waits."""
        with self._state:
            queue = self._prompt or self._patient
            if not queue:
                return False
            baton = queue.popleft()
            group.expect_waiters()
            baton.carried = group
            baton.lock.release()
            return True

    def release(self) -> None:
        """End the turn with nothing open: the next writer in line starts afresh."""
        with self._state:
            queue = self._prompt or self._patient
            if queue:
                queue.popleft().lock.release()
            else:
                self._held = False

    def end(self, group: Group | None) -> bool:
        """End the turn of a writer that leaves `group` (if any): hand it over (True), or
        else commit it for its writers and release the turn (False)."""
        if group is not None and group.open_for_more() and self.hand_over(group):
            return True
        try:
            if group is not None:
                group.commit()
        finally:
            self.release()
        return False


class Group:
    """One SQLite transaction holding the write lock, shared by the writers of consecutive
    turns. Each writer's statements run inside a savepoint of their own, so that one that
    fails undoes only its own; the writer that ends the chain commits for all of them."""

    # At most this many writers share a commit, so that none waits long for the chain to end.
    LIMIT = 16

    def __init__(self, connection: Any):
        self.connection = connection  # a SQLAlchemy Connection, the transaction begun
        self.writers = 0
        self._committed: threading.Event | None = None  # made once a writer waits for it
        self._error: BaseException | None = None

    def join(self) -> None:
        self.writers += 1
        self._driver().execute("SAVEPOINT fakeproc_writer")

    def leave(self, done: bool) -> None:
        """Keep this writer's statements (`done`), or undo them."""
        driver = self._driver()
        if not done:
            driver.execute("ROLLBACK TO fakeproc_writer")
        driver.execute("RELEASE fakeproc_writer")

    def open_for_more(self) -> bool:
        return self.writers < self.LIMIT

    def expect_waiters(self) -> None:
        """Before the group is handed over: the writer handing it waits for the commit."""
        if self._committed is None:
            self._committed = threading.Event()

    def commit(self) -> None:
        """Commit for every writer and give the connection back to the pool."""
        try:
            self.connection.commit()
        except BaseException as error:
            self._error = error
            raise
        finally:
            if self._committed is not None:
                self._committed.set()
            self.connection.close()

    def wait(self) -> None:
        """Until a later writer committed the group; raises if that commit failed."""
        assert self._committed is not None, "wait() before the group was handed over"
        self._committed.wait()
        if self._error is not None:
            raise GroupCommitFailed(str(self._error)) from self._error

    def _driver(self) -> sqlite3.Connection:
        return self.connection.connection.driver_connection


class GroupCommitFailed(RuntimeError):
    """The commit that a later writer made for this one failed: nothing of it was stored."""


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
