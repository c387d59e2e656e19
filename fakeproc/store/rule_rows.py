"""The rules table: the enabled rules each process caches, the counting of firings (exact
across processes: one conditional UPDATE), and the rows as the control API shows them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import bindparam, delete, select, update

from ..errors import NotFound
from . import attempt_connection, config_version
from .fast_sql import RawStatement
from .models import Rule, db
from .paging import Page, keyset_page


def enabled_rows() -> Any:
    """The enabled rules in evaluation order (priority, then age), used up or not."""
    return attempt_connection.connection().execute(
        select(Rule.id, Rule.match, Rule.action, Rule.remaining, Rule.probability)
        .where(Rule.enabled.is_(True)).order_by(Rule.priority, Rule.id))


_RULES = Rule.__table__
# Built once: the charge path runs these on every firing of a rule.
_CONSUME = RawStatement(
    update(_RULES).where(_RULES.c.id == bindparam("rule_id"), _RULES.c.enabled.is_(True),
                         _RULES.c.remaining > 0)
    .values(remaining=_RULES.c.remaining - 1, fired=_RULES.c.fired + 1)
    .returning(_RULES.c.remaining), ("rule_id",))
_COUNT = RawStatement(update(_RULES).where(_RULES.c.id == bindparam("rule_id"))
                      .values(fired=_RULES.c.fired + 1), ("rule_id",))


def consume(rule_id: int) -> bool:
    """Use one of a counted rule's remaining firings; False when another request took the last."""
    row = _CONSUME.execute(attempt_connection.writer(), {"rule_id": rule_id}).fetchone()
    if row is None:
        return False
    if row[0] == 0:
        config_version.bump()
    return True


def count_firing(rule_ids: Iterable[int]) -> None:
    """Count the transactions that rules without a `remaining` limit fired on."""
    for rule_id in sorted(rule_ids):
        _COUNT.execute(attempt_connection.writer(), {"rule_id": rule_id})


def insert(values: dict[str, Any]) -> dict[str, Any]:
    """A new rule from column values (the match already as stored)."""
    now = datetime.now(timezone.utc)
    row = Rule(**values, fired=0, created_at=now, updated_at=now)
    db.session.add(row)
    config_version.bump()
    db.session.commit()
    return rule_json(row)


def change(rule_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """Set the given columns of a rule."""
    row = _row(rule_id)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = datetime.now(timezone.utc)
    config_version.bump()
    db.session.commit()
    return rule_json(row)


def get(rule_id: int) -> dict[str, Any]:
    return rule_json(_row(rule_id))


def page(limit: int = 50, cursor: str | None = None) -> Page:
    rows, next_cursor = keyset_page(select(Rule), Rule.id, limit, cursor)
    return Page([rule_json(row) for row in rows], next_cursor)


def remove(rule_id: int) -> None:
    db.session.delete(_row(rule_id))
    config_version.bump()
    db.session.commit()


def clear() -> int:
    count = db.session.execute(delete(Rule)).rowcount
    config_version.bump()
    return count


def rule_json(row: Rule) -> dict[str, Any]:
    match = dict(row.match or {})
    if match.pop("card_fingerprint", None):
        match["card_number"] = "*" * 12 + match.pop("card_last4", "")
    if match.pop("cvv_fingerprint", None):
        match["cvv"] = "***"
    live = row.enabled and (row.remaining is None or row.remaining > 0)
    return {"id": row.id, "match": match, "action": row.action, "remaining": row.remaining,
            "probability": row.probability, "enabled": row.enabled, "priority": row.priority,
            "note": row.note, "fired": row.fired, "live": live,
            "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
            "updated_at": row.updated_at.isoformat().replace("+00:00", "Z")}


def _row(rule_id: int) -> Rule:
    row = db.session.get(Rule, rule_id)
    if row is None:
        raise NotFound(f"no rule {rule_id}")
    return row
