"""Persistence of transactions and attempts: short, race-safe units on SQLite and PostgreSQL.

Every unit that must see a consistent transaction starts with a write, so that SQLite's write
lock (or PostgreSQL's row lock) is held before anything is read: pysqlite does not open a
transaction for a leading SELECT, and PostgreSQL's READ COMMITTED re-reads only per statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .models import Attempt, Transaction, db


@dataclass(frozen=True)
class Settlement:
    """A transaction's decided outcome and the answer that carries it."""

    status: str
    result_id: str | None
    error_code: str | None
    error_message: str | None
    response_status: int
    response_body: dict[str, Any]


@dataclass(frozen=True)
class Stored:
    """What a retry compares itself with: the transaction's payload, as first received."""

    method: str
    payment_method: str
    fingerprint: str
    amount_millis: int | None
    currency: str | None
    orphaned: bool


@dataclass(frozen=True)
class Registered:
    """What registering an attempt learned: its number, and the transaction as it stood."""

    transaction_pk: int
    number: int
    is_new: bool
    gap_seconds: float | None
    stored: Stored | None  # the existing transaction, for retries only
    settlement: Settlement | None


def register(values: dict[str, Any], settlement: Settlement | None) -> Registered:
    """Create the transaction or count one more attempt of it, atomically (the idempotency key)."""
    if settlement is not None:
        values = {**values, **_settlement_values(settlement), "issued_count": int(
            settlement.result_id is not None), "settled_at": values["created_at"]}
    insert_stmt = _dialect_insert()(Transaction).values(**values)
    stmt = insert_stmt.on_conflict_do_update(
        index_elements=[Transaction.connector, Transaction.transaction_id],
        set_={"attempt_count": Transaction.attempt_count + 1,
              "last_attempt_at": insert_stmt.excluded.last_attempt_at},
    ).returning(Transaction.id, Transaction.attempt_count)
    pk, number = db.session.execute(stmt).one()
    if number == 1:
        return Registered(pk, 1, True, None, None, settlement)
    row = load(pk)
    stored = Stored(row.method, row.payment_method, row.fingerprint, row.amount_millis,
                    row.currency, row.orphaned)
    previous = db.session.execute(select(Attempt.received_at).where(
        Attempt.transaction_pk == pk, Attempt.number == number - 1)).scalar()
    gap = (values["created_at"] - previous).total_seconds() if previous else None
    return Registered(pk, number, False, max(gap, 0.0) if gap is not None else None, stored,
                      settlement_of(row))


def record_attempt(values: dict[str, Any]) -> int:
    return db.session.execute(insert(Attempt).values(**values).returning(Attempt.id)).scalar_one()


def settle(transaction_pk: int, settlement: Settlement, settled_at: datetime) -> None:
    db.session.execute(update(Transaction).where(Transaction.id == transaction_pk).values(
        **_settlement_values(settlement), settle_by=None, settled_at=settled_at,
        issued_count=Transaction.issued_count + int(settlement.result_id is not None)))


def count_issue(transaction_pk: int) -> int:
    """One more charge or token issued for a transaction (reprocess); returns the new count."""
    return db.session.execute(update(Transaction).where(Transaction.id == transaction_pk).values(
        issued_count=Transaction.issued_count + 1).returning(Transaction.issued_count)).scalar_one()


def flag_violation(transaction_pk: int) -> None:
    db.session.execute(update(Transaction).where(Transaction.id == transaction_pk).values(
        protocol_violation=True))


def close_attempt(attempt_pk: int, transaction_pk: int, values: dict[str, Any],
                  timely: bool, was_orphaned: bool) -> None:
    """Record how an attempt ended; re-derive the orphan flag when it could have changed."""
    if not timely or was_orphaned:
        _lock_transaction(transaction_pk)
    db.session.execute(update(Attempt).where(Attempt.id == attempt_pk).values(**values))
    if not timely or was_orphaned:
        refresh_orphan(transaction_pk)


def refresh_orphan(transaction_pk: int) -> None:
    """Orphaned: charged, no attempt still open, and none answered in time."""
    attempts = select(Attempt.id).where(Attempt.transaction_pk == transaction_pk)
    still_open = exists(attempts.where(Attempt.delivery.is_(None)))
    timely = exists(attempts.where(and_(Attempt.delivery == "response", Attempt.late.is_(False))))
    db.session.execute(update(Transaction).where(Transaction.id == transaction_pk).values(
        orphaned=and_(Transaction.status == "succeeded", ~still_open, ~timely)))


def load(transaction_pk: int) -> Transaction:
    return db.session.execute(select(Transaction).where(Transaction.id == transaction_pk)
                              .execution_options(populate_existing=True)).scalar_one()


def settlement_of(row: Transaction) -> Settlement | None:
    if row.status == "in_flight":
        return None
    return Settlement(row.status, row.result_id, row.error_code, row.error_message,
                      row.response_status or 200, row.response_body or {})


def commit() -> None:
    db.session.commit()


def release() -> None:
    """Commit and give the connection back to the pool, before a long wait or sleep."""
    db.session.commit()
    db.session.close()


def _lock_transaction(transaction_pk: int) -> None:
    # A write, so that SQLite takes its lock here and PostgreSQL locks the row: the orphan
    # query that follows then sees every attempt committed before it.
    db.session.execute(update(Transaction).where(Transaction.id == transaction_pk).values(
        attempt_count=Transaction.attempt_count))


def _settlement_values(settlement: Settlement) -> dict[str, Any]:
    return {"status": settlement.status, "result_id": settlement.result_id,
            "error_code": settlement.error_code, "error_message": settlement.error_message,
            "response_status": settlement.response_status,
            "response_body": settlement.response_body}


def _dialect_insert():
    name = db.session.get_bind().dialect.name
    return postgresql.insert if name == "postgresql" else sqlite.insert
