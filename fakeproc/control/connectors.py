"""Connectors as the control API and the admin panel change them: validated bodies in, the
password kept only as a keyed digest."""

from __future__ import annotations

from typing import Any

from ..errors import Conflict
from ..processor.fingerprints import Fingerprinter
from ..store import connector_rows
from ..store.connector_rows import DEFAULT, ConnectorSettings
from .schemas import ConnectorCreate, ConnectorUpdate


def create(data: ConnectorCreate, fingerprints: Fingerprinter) -> ConnectorSettings:
    return connector_rows.insert(data.unique_name, _fields(
        data.model_dump(exclude={"unique_name"}), fingerprints))


def update(unique_name: str, data: ConnectorUpdate,
           fingerprints: Fingerprinter) -> ConnectorSettings:
    return connector_rows.change(unique_name,
                                 _fields(data.model_dump(exclude_unset=True), fingerprints))


def ensure_default(username: str | None, password: str | None,
                   fingerprints: Fingerprinter) -> None:
    """Create Default on first start; credentials given at start-up replace stored ones."""
    if connector_rows.exists(DEFAULT):
        given = {k: v for k, v in (("username", username), ("password", password)) if v is not None}
        if given:
            update(DEFAULT, ConnectorUpdate(**given), fingerprints)
        return
    try:
        create(ConnectorCreate(unique_name=DEFAULT, username=username, password=password),
               fingerprints)
    except Conflict:  # another process created it at the same moment
        pass


def _fields(given: dict[str, Any], fingerprints: Fingerprinter) -> dict[str, Any]:
    """The columns a body sets: a password becomes its digest ("" removes it)."""
    fields = dict(given)
    if "password" in fields:
        password = fields.pop("password")
        fields["password_digest"] = fingerprints.digest("password:" + password) \
            if password else None
    return fields
