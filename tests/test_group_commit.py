"""SQLite writers that wait for their turn share one transaction and one commit: each writer's
work is durable before it may answer, and one that fails undoes only its own.

Real threads on a real SQLite file; a fresh connection of the driver's own checks what is
committed, as another process would see it."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from fakeproc.store import attempt_connection, sqlite_write_turns
from fakeproc.store.models import db


def _committed(db_path: Any) -> list[str]:
    with sqlite3.connect(db_path) as outside:
        return [name for (name,) in outside.execute("SELECT name FROM scratch ORDER BY name")]


def _queued(turns: sqlite_write_turns.Turns, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(turns._prompt) + len(turns._patient) < count:
        assert time.monotonic() < deadline, f"{count} writers never queued"
        time.sleep(0.001)


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many writers each commit was for."""
    made: list[int] = []
    commit = sqlite_write_turns.Group.commit

    def counted(group: sqlite_write_turns.Group) -> None:
        commit(group)
        made.append(group.writers)

    monkeypatch.setattr(sqlite_write_turns.Group, "commit", counted)
    return made


@pytest.fixture
def writers(app: Any, db_path: Any) -> Callable[..., threading.Thread]:
    with app.app_context():
        db.session.execute(text("CREATE TABLE scratch (name TEXT PRIMARY KEY)"))
        db.session.commit()

    def start(name: str, events: list[str], fail: bool = False,
              hold: threading.Event | None = None) -> threading.Thread:
        def write() -> None:
            with app.app_context(), attempt_connection.unit():
                attempt_connection.writer().execute(
                    text("INSERT INTO scratch (name) VALUES (:name)"), {"name": name})
                if hold is not None:
                    hold.wait(5)
                if fail:
                    events.append(f"{name} failed")
                    raise RuntimeError(name)
                attempt_connection.commit()
                events.append(f"{name} answered, committed: {','.join(_committed(db_path))}")

        thread = threading.Thread(target=lambda: _swallow(write), daemon=True)
        thread.start()
        return thread

    return start


def _swallow(work: Callable[[], None]) -> None:
    try:
        work()
    except RuntimeError:
        pass


def _in_line(app: Any, writers: Callable[..., threading.Thread], names: str,
             failing: str = "") -> list[str]:
    """Run one writer per name: the first holds its turn until every other one is queued
    behind it, in order; those in `failing` raise after their insert. Returns what each said."""
    events: list[str] = []
    with app.app_context():
        turns = sqlite_write_turns.turns_for(db.engine)
    first_holds = threading.Event()
    threads = [writers(names[0], events, fail=names[0] in failing, hold=first_holds)]
    _queued_or_holding(turns)
    for queued, name in enumerate(names[1:], start=1):
        threads.append(writers(name, events, fail=name in failing))
        _queued(turns, queued)
    first_holds.set()
    for thread in threads:
        thread.join(10)
    return events


def test_writers_waiting_for_the_turn_share_one_commit_and_each_answers_after_it(
        app, writers, commits):
    events = _in_line(app, writers, "abc")
    # "a" handed its transaction to "b", "b" to "c"; "c" committed all three, and only then
    # could "a" and "b" answer: each saw its own row (and the others') committed.
    assert commits == [3]
    assert sorted(events) == ["a answered, committed: a,b,c", "b answered, committed: a,b,c",
                              "c answered, committed: a,b,c"]


def test_a_writer_that_fails_in_a_shared_transaction_undoes_only_its_own_writes(
        app, writers, db_path, commits):
    events = _in_line(app, writers, "abc", failing="b")
    assert "b failed" in events
    assert commits == [3]
    assert _committed(db_path) == ["a", "c"]
    assert sorted(e for e in events if "answered" in e) == [
        "a answered, committed: a,c", "c answered, committed: a,c"]
    # The turn is free again: a new writer goes straight through.
    writers("d", events).join(10)
    assert _committed(db_path) == ["a", "c", "d"]


def test_a_group_ends_at_its_limit_so_no_writer_waits_for_a_long_chain(app, writers, db_path,
                                                                       monkeypatch, commits):
    monkeypatch.setattr(sqlite_write_turns.Group, "LIMIT", 2)
    events = _in_line(app, writers, "abcd")
    # Two writers a commit: a and b together, then c and d; each answered once its own row
    # was committed.
    assert commits == [2, 2]
    assert _committed(db_path) == ["a", "b", "c", "d"]
    for event in events:
        name, seen = event.split(" answered, committed: ")
        assert name in seen.split(","), event


def _queued_or_holding(turns: sqlite_write_turns.Turns) -> None:
    deadline = time.monotonic() + 5
    while not turns._held:
        assert time.monotonic() < deadline, "the first writer never took its turn"
        time.sleep(0.001)
