"""Engine settings, schema migrations (Alembic through Flask-Migrate) under a lock, and the
sweep of what stopped processes left open."""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import flask_migrate
from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.pool import Pool

from ..settings import StartupError, safe_url
from . import sqlite_write_turns, transactions
from .models import db

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# An arbitrary constant: the advisory lock that serialises migrations on PostgreSQL.
_PG_MIGRATION_LOCK = 7_412_905
log = logging.getLogger("fakeproc")


# PostgreSQL connections per worker process.
POSTGRES_POOL_SIZE = 10


def engine_options(url: str) -> dict[str, Any]:
    """Pool sizes for many cooperative requests; each holds a connection only briefly."""
    if make_url(url).get_backend_name() == "sqlite":
        # LIFO: the same few connections serve one after another, their page caches warm.
        return {"pool_size": 20, "max_overflow": 80, "pool_timeout": 60, "pool_use_lifo": True}
    # A fixed number per worker, never more: a request that finds them all in use waits for
    # one (cooperatively) instead of opening another. Connections opened beyond the pool and
    # closed again after every burst cost more than the charges themselves, and a storm over
    # several instances ran the server out of connections (benchmarks/storm.py). See
    # docs/deploy.md, *Connections*.
    # No pool_pre_ping: `_ping_if_idle` pings only connections that sat unused.
    return {"pool_size": POSTGRES_POOL_SIZE, "max_overflow": 0, "pool_timeout": 60}


# A PostgreSQL connection unused for this long is pinged before it is handed out: the server
# may have restarted or dropped it meanwhile. One in steady use is not, which saves a round trip
# on every request under load; a connection that breaks between two close uses fails its
# request, as a restart in the middle of one would.
PING_AFTER_IDLE_SECONDS = 1.0


@event.listens_for(Pool, "checkin")
def _note_idle(dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        return  # a file: nothing to lose between uses
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
        return
    import psycopg

    autocommit = dbapi_connection.autocommit
    try:
        dbapi_connection.autocommit = True  # no transaction for the ping (as SQLAlchemy's)
        dbapi_connection.execute("SELECT 1")
        dbapi_connection.autocommit = autocommit
    except psycopg.Error as error:
        raise DisconnectionError(f"a pooled connection was lost: {error}") from error


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers and one writer work at once; busy_timeout makes concurrent writers from
    # several processes queue instead of failing with "database is locked". Checkpoints (which
    # sync the file) come every 10,000 pages rather than 1,000: each charge writes a few pages.
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL",
                       f"busy_timeout={sqlite_write_turns.LOCK_TIMEOUT * 1000:.0f}",
                       "foreign_keys=ON", "wal_autocheckpoint=10000", "cache_size=-32000",
                       "mmap_size=268435456"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()


def prepare(app: Flask, first_start: Callable[[], None]) -> None:
    """Bring the schema up to date, run `first_start` (the data every store needs, e.g. the
    Default connector), and sweep what stopped processes left open; safe from several
    processes. A database out of reach (refused, unwritable, not a database) is a
    StartupError."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    with in_reach(url):
        _prepare(app, url, first_start)


@contextmanager
def in_reach(url: str) -> Iterator[None]:
    """Turn a database out of reach (refused, unwritable, not a database) into a one-line
    StartupError that names it without its password."""
    try:
        yield
    except (SQLAlchemyError, OSError) as error:
        raise StartupError(f"cannot use the database {safe_url(url)}: {_reason(error)}") \
            from error


def _reason(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


def _prepare(app: Flask, url: str, first_start: Callable[[], None]) -> None:
    with app.app_context(), migration_lock(url):
        before = schema_revision()
        flask_migrate.upgrade(directory=str(MIGRATIONS))
        after = schema_revision()
        if before is None:
            log.info("schema created at revision %s", after)
        elif after != before:
            log.info("schema upgraded from revision %s to %s", before, after)
        first_start()
        attempts, claims = transactions.sweep(datetime.now(timezone.utc))
        db.session.commit()
        if attempts or claims:
            log.warning("a process that stopped left %d attempts open (now marked interrupted) "
                        "and %d undecided transactions claimed (now released)", attempts, claims)


def schema_revision() -> str | None:
    """The Alembic revision the app's database is at; None before the first migration."""
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Only one process migrates a database at a time; the others wait, then find it done."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            yield
            return
        path = Path(parsed.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{path}.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": _PG_MIGRATION_LOCK})
                connection.commit()
    finally:
        engine.dispose()
