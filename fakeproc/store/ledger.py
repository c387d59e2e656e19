"""The ledger: transactions and attempts as QA engineers read them (lists, filters, details)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, bindparam, case, delete, func, select

from ..errors import BadRequest, Conflict, NotFound
from .models import Attempt, Transaction, db
from .paging import Page, keyset_page, keyset_page_of_any

STATUSES = ("succeeded", "declined", "in_flight", "failed")


def id_key(method: str) -> str:
    """Where a transaction's charge or token id shows: `charge_id`, or `token_id`."""
    return "token_id" if method == "tokenize" else "charge_id"


@dataclass(frozen=True)
class Filters:
    """What a transaction list is narrowed to; every field optional."""

    transaction_id: str | None = None
    connector: str | None = None
    status: str | None = None
    method: str | None = None
    retried: bool = False
    orphaned: bool = False
    q: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
        if self.method is not None and self.method not in ("charge", "tokenize"):
            raise BadRequest("method must be charge or tokenize")


def transactions(filters: Filters, limit: int = 50, cursor: str | None = None) -> Page:
    """Newest first, keyed on the row id so that deep pages cost as little as the first."""
    query = _filtered(select(Transaction), filters)
    rows, next_cursor = keyset_page_of_any(_searched(query, filters.q), Transaction.id, limit,
                                           cursor)
    return Page([transaction_json(row) for row in rows], next_cursor)


def retries(limit: int = 50, cursor: str | None = None) -> Page:
    """Every transaction that saw more than one attempt, with the gaps between attempts."""
    rows, next_cursor = keyset_page(select(Transaction).where(Transaction.attempt_count > 1),
                                    Transaction.id, limit, cursor)
    gaps: dict[int, list[float | None]] = {row.id: [] for row in rows}
    for pk, gap in db.session.execute(
            select(Attempt.transaction_pk, Attempt.gap_seconds)
            .where(Attempt.transaction_pk.in_(gaps), Attempt.number > 1)
            .order_by(Attempt.transaction_pk, Attempt.number)):
        gaps[pk].append(gap)
    items = [{"transaction_id": row.transaction_id, "connector": row.connector,
              "attempts": row.attempt_count, "first_attempt_at": _iso(row.created_at),
              "last_attempt_at": _iso(row.last_attempt_at), "gaps_seconds": gaps[row.id],
              "status": row.status, id_key(row.method): row.result_id,
              "orphaned": row.orphaned} for row in rows]
    return Page(items, next_cursor)


def transaction_detail(transaction_id: str, connector: str | None = None) -> dict[str, Any]:
    query = select(Transaction).where(Transaction.transaction_id == transaction_id)
    if connector is not None:
        query = query.where(Transaction.connector == connector)
    rows = db.session.execute(query.limit(2)).scalars().all()
    if not rows:
        raise NotFound(f"no transaction {transaction_id}"
                       + (f" on connector {connector}" if connector else ""))
    if len(rows) > 1:
        raise Conflict(f"transaction {transaction_id} exists on several connectors; "
                       "name one with ?connector=")
    row = rows[0]
    attempts = db.session.execute(select(Attempt).where(Attempt.transaction_pk == row.id)
                                  .order_by(Attempt.number)).scalars()
    return transaction_json(row) | {"attempts": [attempt_json(a) for a in attempts]}


def reset() -> dict[str, int]:
    """Forget every transaction and attempt."""
    attempts = db.session.execute(delete(Attempt)).rowcount
    transactions_ = db.session.execute(delete(Transaction)).rowcount
    db.session.commit()
    return {"transactions": transactions_, "attempts": attempts}


def counts(since: datetime | None = None) -> dict[str, int]:
    """Totals by status, retried and orphaned, in one pass; `today` counts those created
    since `since` (default: midnight UTC)."""
    if since is None:
        since = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    columns = [func.count(case((Transaction.status == status, 1))) for status in STATUSES]
    columns += [func.count(case((Transaction.attempt_count > 1, 1))),
                func.count(case((Transaction.orphaned.is_(True), 1))),
                func.count(case((Transaction.created_at >= since, 1))), func.count()]
    row = db.session.execute(select(*columns)).one()
    return dict(zip((*STATUSES, "retried", "orphaned", "today", "total"), row))


def all_transactions(filters: Filters, batch: int = 500) -> Iterator[dict[str, Any]]:
    """Every transaction matching `filters`, newest first, a page at a time (for exports)."""
    cursor = None
    while True:
        page = transactions(filters, batch, cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def transaction_json(row: Transaction) -> dict[str, Any]:
    return {
        "transaction_id": row.transaction_id, "connector": row.connector, "method": row.method,
        "payment_method": row.payment_method, "status": row.status,
        id_key(row.method): row.result_id, "error_code": row.error_code,
        "error_message": row.error_message, "amount": format_amount(row.amount_millis),
        "currency": row.currency, "card_brand": row.card_brand, "last4": row.last4,
        "routing_number": row.routing_number, "postal_code": row.postal_code,
        "description": row.description, "parameters": row.parameters,
        "attempts": row.attempt_count, "retried": row.attempt_count > 1,
        "orphaned": row.orphaned, "protocol_violation": row.protocol_violation,
        "issued": row.issued_count, "double_charged": row.issued_count > 1,
        "response": row.response_body, "created_at": _iso(row.created_at),
        "settled_at": _iso(row.settled_at), "last_attempt_at": _iso(row.last_attempt_at),
    }


def attempt_json(row: Attempt) -> dict[str, Any]:
    return {
        "number": row.number, "kind": row.kind, "received_at": _iso(row.received_at),
        "responded_at": _iso(row.responded_at), "gap_seconds": row.gap_seconds,
        "delivery": _delivery(row), "status_code": row.status_code, "late": row.late,
        "intact": row.intact,
        "rules": row.rules or [], "protocol_violation": row.protocol_violation,
        "result_id": row.result_id, "response_body": row.response_body,
        "request": row.request, "client_ip": row.client_ip, "user_agent": row.user_agent,
    }


def _delivery(row: Attempt) -> str | None:
    """How an attempt ended; one still open past its expected end lost its process (the next
    retry or start-up records that, this shows it meanwhile)."""
    if row.delivery is None and row.expected_by is not None \
            and row.expected_by < datetime.now(timezone.utc):
        return "interrupted"
    return row.delivery


def format_amount(millis: int | None) -> str | None:
    if millis is None:
        return None
    places = 2 if millis % 10 == 0 else 3
    return f"{Decimal(millis) / 1000:.{places}f}"


def _filtered(query: Select, filters: Filters) -> Select:
    if filters.transaction_id is not None:
        query = query.where(Transaction.transaction_id == filters.transaction_id)
    if filters.connector is not None:
        query = query.where(Transaction.connector == filters.connector)
    if filters.status is not None:  # written out, so the in-flight partial index can match
        query = query.where(Transaction.status == bindparam("status", filters.status,
                                                            literal_execute=True))
    if filters.method is not None:
        query = query.where(Transaction.method == filters.method)
    if filters.retried:
        query = query.where(Transaction.attempt_count > 1)
    if filters.orphaned:
        query = query.where(Transaction.orphaned.is_(True))
    return query


def _searched(query: Select, q: str | None) -> list[Select]:
    """The search `q` as one query per place it can match, each answered from its own index
    (transaction id, charge or token id, last 4), whether the last 4 is common or rare."""
    if not q or not q.strip():
        return [query]
    q = q.strip()
    found = [Transaction.transaction_id == q, Transaction.result_id == q]
    if q.isascii() and q.isdigit() and len(q) <= 4:  # only digits can be a last 4 (or last 2)
        found.append(Transaction.last4 == q)
    return [query.where(condition) for condition in found]


def _iso(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None
