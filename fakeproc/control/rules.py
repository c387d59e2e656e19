"""Rules as the control API and the admin panel arm and change them: validated bodies in,
card numbers and CVVs in a match kept only as keyed fingerprints."""

from __future__ import annotations

from typing import Any

from ..processor.fingerprints import Fingerprinter
from ..store import rule_rows
from .schemas import RuleCreate, RuleMatch, RuleUpdate


def create(data: RuleCreate, fingerprints: Fingerprinter) -> dict[str, Any]:
    return rule_rows.insert({
        "match": _stored_match(data.match, fingerprints),
        "action": data.action.model_dump(mode="json", exclude_none=True),
        "remaining": data.remaining, "probability": data.probability, "enabled": data.enabled,
        "priority": data.priority, "note": data.note})


def update(rule_id: int, data: RuleUpdate, fingerprints: Fingerprinter) -> dict[str, Any]:
    """What is given replaces what was; `remaining` and `note` may be set to null."""
    changes = data.model_dump(exclude_unset=True)
    values: dict[str, Any] = {}
    if data.match is not None:
        values["match"] = _stored_match(data.match, fingerprints)
    if data.action is not None:
        values["action"] = data.action.model_dump(mode="json", exclude_none=True)
    for name in ("remaining", "probability", "enabled", "priority", "note"):
        if name in changes and (changes[name] is not None or name in ("remaining", "note")):
            values[name] = changes[name]
    return rule_rows.change(rule_id, values)


def _stored_match(match: RuleMatch, fingerprints: Fingerprinter) -> dict[str, Any]:
    """The match as stored: card numbers and CVVs become fingerprints (and a last 4)."""
    stored = match.model_dump(mode="json", exclude_none=True)
    number = stored.pop("card_number", None)
    if number is not None:
        stored["card_fingerprint"] = fingerprints.digest(f"credit-card:{number}")
        stored["card_last4"] = number[-4:]
    cvv = stored.pop("cvv", None)
    if cvv is not None:
        stored["cvv_fingerprint"] = fingerprints.digest(f"cvv:{cvv}")
    return stored
