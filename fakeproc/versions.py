"""The store's configuration version: moved by every change to connectors or rules, so each
process knows when its cached copies are stale with one primary-key read per request."""

from __future__ import annotations

import uuid

from sqlalchemy import literal_column, select, update

from . import unit
from .models import Setting
from .rawsql import RawStatement

KEY = "config_version"
_CURRENT = RawStatement(select(Setting.__table__.c.value).where(
    Setting.__table__.c.key == literal_column(f"'{KEY}'")), ())


def current() -> str | None:
    """The version, read once per session (a request): every cache asks, one query answers."""
    info = unit.info()
    if KEY not in info:
        row = _CURRENT.execute(unit.connection(), {}).fetchone()
        info[KEY] = row[0] if row else None
    return info[KEY]


def bump() -> None:
    """Mark every cached copy stale (within the caller's database transaction)."""
    unit.connection().execute(update(Setting).where(Setting.key == KEY)
                              .values(value=uuid.uuid4().hex))
    unit.info().pop(KEY, None)
