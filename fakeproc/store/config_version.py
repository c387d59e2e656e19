"""The store's configuration version: moved by every change to connectors or rules, so each
process knows when its cached copies are stale.

On PostgreSQL every request reads the version (one primary-key read). On SQLite, whose
processes all share one machine, a signal file beside the database is touched on every change;
while its modification time stays the same and is older than a second, the version read last
is still current and no query is needed. (The second covers the moment between a change's
touch and its commit, and file systems that keep coarse times.)
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from sqlalchemy import literal_column, select, update

from . import attempt_connection
from .fast_sql import RawStatement
from .models import Setting, db

KEY = "config_version"
_CURRENT = RawStatement(select(Setting.__table__.c.value).where(
    Setting.__table__.c.key == literal_column(f"'{KEY}'")), ())
_QUIET_NS = 1_000_000_000

_lock = threading.Lock()
_known: dict[str, tuple[int, str | None]] = {}  # signal file -> (its mtime, the version then)


def current() -> str | None:
    """The version, read once per unit of work (a request)."""
    info = attempt_connection.info()
    if KEY in info:
        return info[KEY]
    signal = _signal_file()
    mtime = _mtime(signal) if signal else None
    quiet = mtime is not None and time.time_ns() - mtime > _QUIET_NS
    known = _known.get(signal) if signal else None
    if quiet and known is not None and known[0] == mtime:
        info[KEY] = known[1]
        return known[1]
    row = _CURRENT.execute(attempt_connection.connection(), {}).fetchone()
    info[KEY] = row[0] if row else None
    if quiet and signal:
        with _lock:
            _known[signal] = (mtime, info[KEY])
    return info[KEY]


def bump() -> None:
    """Mark every cached copy stale (within the caller's database transaction)."""
    attempt_connection.connection().execute(update(Setting).where(Setting.key == KEY)
                              .values(value=uuid.uuid4().hex))
    attempt_connection.info().pop(KEY, None)
    signal = _signal_file()
    if signal:
        _touch(signal)


def _signal_file() -> str | None:
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return f"{url.database}.version"


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        _touch(path)
        return None


def _touch(path: str) -> None:
    try:
        with open(path, "a"):
            pass
        os.utime(path)
    except OSError:  # a read-only directory: every request then asks the database
        pass
