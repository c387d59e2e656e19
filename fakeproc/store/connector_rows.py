"""The connectors table: the Twilio Pay Connector instances fakeproc stands behind, their
settings as one request sees them, and each process's cached copy of them."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..config import DEFAULT_CONNECTOR
from ..errors import Conflict, NotFound
from . import attempt_connection, config_version
from .models import Connector, db
from .paging import Page, keyset_page

DEFAULT = DEFAULT_CONNECTOR


@dataclass(frozen=True)
class ConnectorSettings:
    """A connector as one request sees it (a snapshot, safe to hold across waits)."""

    unique_name: str
    username: str | None
    password_digest: str | None
    mode: str
    idempotency: str
    magic_values: bool
    timeout_seconds: float

    def to_json(self) -> dict[str, Any]:
        """The public view: the password is write-only, only whether one is set shows."""
        return {"unique_name": self.unique_name, "username": self.username,
                "has_password": self.password_digest is not None, "mode": self.mode,
                "idempotency": self.idempotency, "magic_values": self.magic_values,
                "timeout_seconds": self.timeout_seconds}


def _settings(row: Connector) -> ConnectorSettings:
    return ConnectorSettings(row.unique_name, row.username, row.password_digest, row.mode,
                             row.idempotency, row.magic_values, row.timeout_seconds)


class Directory:
    """This process's copy of the connectors, reloaded when the configuration version moves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: str | None = None
        self._connectors: tuple[ConnectorSettings, ...] = ()

    def resolve(self, unique_name: str | None, username: str | None) -> ConnectorSettings | None:
        """The connector a request belongs to: named by its path, else by its Basic-auth
        username (the oldest such connector), else Default."""
        connectors = self._current()
        if unique_name is not None:
            return next((c for c in connectors if c.unique_name == unique_name), None)
        if username:
            named = next((c for c in connectors if c.username == username), None)
            if named is not None:
                return named
        return next((c for c in connectors if c.unique_name == DEFAULT), None)

    def _current(self) -> tuple[ConnectorSettings, ...]:
        version = config_version.current()
        if version != self._version or version is None:
            rows = attempt_connection.connection().execute(select(Connector).order_by(Connector.id))
            loaded = tuple(_settings(row) for row in rows)
            with self._lock:
                self._connectors, self._version = loaded, version
        return self._connectors


def all_connectors() -> list[ConnectorSettings]:
    rows = db.session.execute(select(Connector).order_by(Connector.id)).scalars()
    return [_settings(row) for row in rows]


def page(limit: int = 50, cursor: str | None = None) -> Page:
    """Connectors, newest first, in pages like every other list of the API."""
    rows, next_cursor = keyset_page(select(Connector), Connector.id, limit, cursor)
    return Page([_settings(row).to_json() for row in rows], next_cursor)


def get(unique_name: str) -> ConnectorSettings:
    return _settings(_row(unique_name))


def insert(unique_name: str, fields: dict[str, Any]) -> ConnectorSettings:
    """A new connector with `fields` (columns of the table); Conflict if the name is taken."""
    now = datetime.now(timezone.utc)
    row = Connector(unique_name=unique_name, created_at=now, updated_at=now)
    _apply(row, fields)
    config_version.bump()
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(f"connector {unique_name} already exists") from None
    return _settings(row)


def change(unique_name: str, fields: dict[str, Any]) -> ConnectorSettings:
    row = _row(unique_name)
    _apply(row, fields)
    row.updated_at = datetime.now(timezone.utc)
    config_version.bump()
    db.session.commit()
    return _settings(row)


def delete(unique_name: str) -> None:
    if unique_name == DEFAULT:
        raise Conflict("the Default connector cannot be deleted; change its settings instead")
    db.session.delete(_row(unique_name))
    config_version.bump()
    db.session.commit()


def exists(unique_name: str) -> bool:
    return db.session.execute(select(Connector.id).where(
        Connector.unique_name == unique_name)).scalar() is not None


def _apply(row: Connector, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if value is not None or name in ("username", "password_digest"):
            setattr(row, name, value)


def _row(unique_name: str) -> Connector:
    row = db.session.execute(select(Connector).where(Connector.unique_name == unique_name)).scalar()
    if row is None:
        raise NotFound(f"no connector named {unique_name}")
    return row
