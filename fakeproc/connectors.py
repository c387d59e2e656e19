"""Connectors: the Twilio Pay Connector instances fakeproc stands behind, and their settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .store import attempt_connection, config_version
from .errors import Conflict, NotFound
from .store.models import Connector, db
from .store.paging import Page, keyset_page
from .schemas import ConnectorCreate, ConnectorUpdate
from .security import Fingerprinter, same

DEFAULT = "Default"


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


def authenticate(connector: ConnectorSettings, username: str | None, password: str | None,
                 fingerprints: Fingerprinter) -> bool:
    """A connector with a password wants that username and password; one without takes all."""
    if connector.password_digest is None:
        return True
    if username is None or password is None:
        return False
    user_ok = same(username, connector.username or "")
    password_ok = same(fingerprints.digest("password:" + password), connector.password_digest)
    return user_ok and password_ok


def all_connectors() -> list[ConnectorSettings]:
    rows = db.session.execute(select(Connector).order_by(Connector.id)).scalars()
    return [_settings(row) for row in rows]


def page(limit: int = 50, cursor: str | None = None) -> Page:
    """Connectors, newest first, in pages like every other list of the API."""
    rows, next_cursor = keyset_page(select(Connector), Connector.id, limit, cursor)
    return Page([_settings(row).to_json() for row in rows], next_cursor)


def get(unique_name: str) -> ConnectorSettings:
    return _settings(_row(unique_name))


def create(data: ConnectorCreate, fingerprints: Fingerprinter) -> ConnectorSettings:
    now = datetime.now(timezone.utc)
    row = Connector(unique_name=data.unique_name, created_at=now, updated_at=now)
    _apply(row, data.model_dump(exclude={"unique_name"}), fingerprints)
    config_version.bump()
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(f"connector {data.unique_name} already exists") from None
    return _settings(row)


def update(unique_name: str, data: ConnectorUpdate,
           fingerprints: Fingerprinter) -> ConnectorSettings:
    row = _row(unique_name)
    _apply(row, data.model_dump(exclude_unset=True), fingerprints)
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


def ensure_default(username: str | None, password: str | None,
                   fingerprints: Fingerprinter) -> None:
    """Create Default on first start; credentials given at start-up replace stored ones."""
    if db.session.execute(select(Connector.id).where(Connector.unique_name == DEFAULT)).scalar():
        given = {k: v for k, v in (("username", username), ("password", password)) if v is not None}
        if given:
            update(DEFAULT, ConnectorUpdate(**given), fingerprints)
        db.session.commit()
        return
    try:
        create(ConnectorCreate(unique_name=DEFAULT, username=username, password=password),
               fingerprints)
    except Conflict:  # another process created it at the same moment
        pass


def _apply(row: Connector, fields: dict[str, Any], fingerprints: Fingerprinter) -> None:
    if "password" in fields:
        password = fields.pop("password")
        row.password_digest = fingerprints.digest("password:" + password) if password else None
    for name, value in fields.items():
        if value is not None or name == "username":
            setattr(row, name, value)


def _row(unique_name: str) -> Connector:
    row = db.session.execute(select(Connector).where(Connector.unique_name == unique_name)).scalar()
    if row is None:
        raise NotFound(f"no connector named {unique_name}")
    return row
