"""The store's configuration version: moved by every change to connectors or rules, so each
process knows when its cached copies are stale with one primary-key read per request."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from .models import Setting, db

KEY = "config_version"


def current() -> str | None:
    """The version, read once per session (a request): every cache asks, one query answers."""
    info = db.session.info
    if KEY not in info:
        info[KEY] = db.session.execute(select(Setting.value).where(Setting.key == KEY)).scalar()
    return info[KEY]


def bump() -> None:
    """Mark every cached copy stale (within the caller's database transaction)."""
    db.session.execute(update(Setting).where(Setting.key == KEY).values(value=uuid.uuid4().hex))
    db.session.info.pop(KEY, None)
