"""Persistence of transactions and attempts: short, race-safe units on SQLite and PostgreSQL.

Statements are built once and run on the session's connection with plain parameters: the charge
path runs thousands of times a second and must not rebuild SQL on each request.

Every unit that must see a consistent transaction starts with a write, so that SQLite's write
lock (or PostgreSQL's row lock) is held before anything is read: pysqlite opens no transaction
for a leading SELECT, and PostgreSQL's READ COMMITTED re-reads only per statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    case,
    exists,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from . import attempt_connection
from .fast_sql import RawStatement
from .models import Attempt, Transaction

T = Transaction.__table__
A = Attempt.__table__
DECIDED = ("succeeded", "declined")


@dataclass(frozen=True)
class Settlement:
    """A transaction's decided outcome and the answer that carries it."""

    status: str
    result_id: str | None
    error_code: str | None
    error_message: str | None
    response_status: int
    response_body: dict[str, Any]

    def values(self) -> dict[str, Any]:
        return {"status": self.status, "result_id": self.result_id,
                "error_code": self.error_code, "error_message": self.error_message,
                "response_status": self.response_status, "response_body": self.response_body}


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
    settlement: Settlement | None  # its outcome, once decided
    claimed: bool  # an attempt is deciding the outcome right now
    # What fired on the transaction's earlier attempts (rule and magic-value labels).
    fired_before: frozenset[str] = frozenset()


@dataclass(frozen=True)
class State:
    settlement: Settlement | None
    settle_by: datetime | None
    created_at: datetime


def connection() -> Connection:
    return attempt_connection.connection()


def writer() -> Connection:
    return attempt_connection.writer()


TRANSACTION_KEYS = (
    "connector", "transaction_id", "method", "payment_method", "status", "result_id",
    "error_code", "error_message", "response_status", "response_body", "amount_millis",
    "currency", "card_brand", "last4", "fingerprint", "routing_number", "postal_code",
    "description", "parameters", "attempt_count", "issued_count", "orphaned",
    "protocol_violation", "settle_by", "created_at", "last_attempt_at", "settled_at")
ATTEMPT_KEYS = (
    "transaction_pk", "number", "kind", "received_at", "responded_at", "gap_seconds",
    "delivery", "status_code", "response_body", "result_id", "late", "intact",
    "protocol_violation", "rules", "request", "client_ip", "user_agent", "expected_by")


@cache
def _register_statement(dialect: str) -> RawStatement:
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(T)
    undecided = T.c.settled_at.is_(None)
    upsert = statement.on_conflict_do_update(
        index_elements=[T.c.connector, T.c.transaction_id],
        set_={"attempt_count": T.c.attempt_count + 1,
              "last_attempt_at": statement.excluded.last_attempt_at,
              "status": case((undecided, literal_column("'in_flight'")), else_=T.c.status)},
    ).returning(T.c.id, T.c.attempt_count)
    return RawStatement(upsert, TRANSACTION_KEYS, ("response_body", "description", "parameters"),
                        ("settle_by", "created_at", "last_attempt_at", "settled_at"))


_LOAD = select(T).where(T.c.id == bindparam("pk"))
_PREVIOUS_ARRIVAL = select(A.c.received_at).where(A.c.transaction_pk == bindparam("pk"),
                                                  A.c.number == bindparam("number"))
_FIRED_BEFORE = select(A.c.rules).where(A.c.transaction_pk == bindparam("pk"))
_RECORD = RawStatement(insert(A).returning(A.c.id), ATTEMPT_KEYS, ("rules", "request"),
                       ("received_at", "responded_at", "expected_by"))
# The first settlement wins: an attempt that lost its claim to a takeover cannot decide again.
_SETTLE = (update(T).where(T.c.id == bindparam("pk"), T.c.settled_at.is_(None)).values(
    settle_by=None, issued_count=T.c.issued_count + bindparam("issued")).returning(T.c.id))
# A claim past its deadline belongs to an attempt whose process is gone (or hopelessly late).
_CLAIM = (update(T).where(T.c.id == bindparam("pk"), T.c.settled_at.is_(None),
                          or_(T.c.settle_by.is_(None), T.c.settle_by < bindparam("now")))
          .values(settle_by=bindparam("deadline"), status="in_flight").returning(T.c.id))
_INTERRUPT = (update(A).where(A.c.delivery.is_(None), A.c.expected_by < bindparam("now"))
              .values(delivery="interrupted").returning(A.c.transaction_pk))
_INTERRUPT_ONE = (update(A).where(A.c.transaction_pk == bindparam("pk"), A.c.delivery.is_(None),
                                  A.c.expected_by < bindparam("now"))
                  .values(delivery="interrupted").returning(A.c.id))
_EXPIRED_CLAIMS = (update(T).where(T.c.settled_at.is_(None), T.c.settle_by < bindparam("now"))
                   .values(settle_by=None).returning(T.c.id))
_UNCLAIM = update(T).where(T.c.id == bindparam("pk"), T.c.settled_at.is_(None)).values(
    settle_by=None)
_COUNT_ISSUE = (update(T).where(T.c.id == bindparam("pk"))
                .values(issued_count=T.c.issued_count + 1).returning(T.c.issued_count))
_FLAG_VIOLATION = update(T).where(T.c.id == bindparam("pk")).values(protocol_violation=True)
_CLOSE = update(A).where(A.c.id == bindparam("attempt_pk"))
_LOCK = update(T).where(T.c.id == bindparam("pk")).values(attempt_count=T.c.attempt_count)


def register(values: dict[str, Any], settlement: Settlement | None,
             claim_until: datetime | None) -> Registered:
    """Create the transaction or count one more attempt of it, atomically (the idempotency key).

    A new transaction is stored already settled when its outcome was known in advance, or
    claimed by this attempt until `claim_until` when it will be decided after a delay."""
    values = {**values, "settle_by": claim_until, "settled_at": None, "issued_count": 0,
              "result_id": None, "error_code": None, "error_message": None,
              "response_status": None, "response_body": None}
    if settlement is not None:
        values.update(settlement.values(), settled_at=values["created_at"],
                      issued_count=int(settlement.result_id is not None))
    conn = writer()
    pk, number = _register_statement(conn.dialect.name).execute(conn, values).fetchone()
    if number == 1:
        return Registered(pk, 1, True, None, None, settlement, claim_until is not None)
    row = conn.execute(_LOAD, {"pk": pk}).one()
    previous = conn.execute(_PREVIOUS_ARRIVAL, {"pk": pk, "number": number - 1}).scalar()
    gap = (values["created_at"] - previous).total_seconds() if previous else None
    stored = Stored(row.method, row.payment_method, row.fingerprint, row.amount_millis,
                    row.currency, row.orphaned)
    # Earlier attempts committed their records before this one got the transaction's lock.
    fired = frozenset(label for (labels,) in conn.execute(_FIRED_BEFORE, {"pk": pk})
                      for label in labels or () if isinstance(label, str))
    return Registered(pk, number, False, max(gap, 0.0) if gap is not None else None, stored,
                      _settlement_of(row), row.settle_by is not None, fired)


def record_attempt(values: dict[str, Any]) -> int:
    return _RECORD.execute(writer(), values).fetchone()[0]


def claim(transaction_pk: int, deadline: datetime, now: datetime) -> bool:
    """Take the right to decide an undecided transaction, unless another attempt holds it and
    is not yet past its deadline."""
    return writer().execute(_CLAIM, {"pk": transaction_pk, "deadline": deadline,
                                     "now": now}).scalar() is not None


def unclaim(transaction_pk: int) -> None:
    writer().execute(_UNCLAIM, {"pk": transaction_pk})


def settle(transaction_pk: int, settlement: Settlement, settled_at: datetime) -> Settlement:
    """Store the outcome, unless another attempt stored one first; returns the one that holds."""
    won = writer().execute(_SETTLE, {"pk": transaction_pk, **settlement.values(),
                                     "settled_at": settled_at,
                                     "issued": int(settlement.result_id is not None)})
    if won.scalar() is not None:
        return settlement
    return _settlement_of(writer().execute(_LOAD, {"pk": transaction_pk}).one())


def label_takeover(transaction_pk: int, number: int) -> None:
    """Attempt `number` decided in place of an original that died undecided: it is the
    original now, and the one cut short decided and charged nothing (a fault)."""
    conn = writer()
    conn.execute(_RELABEL_CUT_SHORT, {"pk": transaction_pk, "decider": number})
    conn.execute(_RELABEL_DECIDER, {"pk": transaction_pk, "decider": number})


_RELABEL_CUT_SHORT = update(A).where(
    A.c.transaction_pk == bindparam("pk"), A.c.number != bindparam("decider"),
    A.c.kind == "original", A.c.delivery == "interrupted").values(kind="fault")
_RELABEL_DECIDER = update(A).where(A.c.transaction_pk == bindparam("pk"),
                                   A.c.number == bindparam("decider")).values(kind="original")


def interrupt_abandoned(transaction_pk: int, now: datetime) -> None:
    """Mark the transaction's attempts still open past their expected end as interrupted:
    the process answering them is gone."""
    if writer().execute(_INTERRUPT_ONE, {"pk": transaction_pk, "now": now}).first():
        refresh_flags(transaction_pk)


def sweep(now: datetime) -> tuple[int, int]:
    """What processes that died left behind, in the whole store: open attempts past their
    expected end become interrupted, claims past their deadline are released (the next retry
    decides). Safe while other processes run. Returns (attempts, claims)."""
    conn = writer()
    touched = [row[0] for row in conn.execute(_INTERRUPT, {"now": now})]
    released = [row[0] for row in conn.execute(_EXPIRED_CLAIMS, {"now": now})]
    for transaction_pk in sorted(set(touched) | set(released)):
        refresh_flags(transaction_pk)
    return len(touched), len(released)


def count_issue(transaction_pk: int) -> int:
    """One more charge or token issued for a transaction (reprocess); returns the new count."""
    return writer().execute(_COUNT_ISSUE, {"pk": transaction_pk}).scalar_one()


def flag_violation(transaction_pk: int) -> None:
    writer().execute(_FLAG_VIOLATION, {"pk": transaction_pk})


def close_attempt(attempt_pk: int, transaction_pk: int, values: dict[str, Any],
                  refresh: bool) -> None:
    """Record how an attempt ended; re-derive the transaction's flags when they may move."""
    conn = writer()
    if refresh:
        conn.execute(_LOCK, {"pk": transaction_pk})
    conn.execute(_CLOSE, {"attempt_pk": attempt_pk, **values})
    if refresh:
        refresh_flags(transaction_pk)


def refresh_flags(transaction_pk: int) -> None:
    """Orphaned: charged, no attempt still open, none answered in time with the outcome.
    Undecided and unclaimed: in flight while an attempt is open, else failed."""
    writer().execute(_REFRESH, {"pk": transaction_pk})


def _refresh_statement():
    attempts = select(A.c.id).where(A.c.transaction_pk == T.c.id)
    still_open = exists(attempts.where(A.c.delivery.is_(None)))
    heard = exists(attempts.where(A.c.delivery == "response", A.c.late.is_(False),
                                  A.c.intact.is_(True)))
    return update(T).where(T.c.id == bindparam("pk")).values(
        orphaned=and_(T.c.status == "succeeded", ~still_open, ~heard),
        status=case((T.c.settled_at.is_not(None), T.c.status),
                    (T.c.settle_by.is_not(None), literal("in_flight")),
                    (still_open, literal("in_flight")), else_=literal("failed")))


_REFRESH = _refresh_statement()


def state(transaction_pk: int) -> State:
    row = connection().execute(_LOAD, {"pk": transaction_pk}).one()
    return State(_settlement_of(row), row.settle_by, row.created_at)


def _settlement_of(row: Any) -> Settlement | None:
    if row.settled_at is None:
        return None
    return Settlement(row.status, row.result_id, row.error_code, row.error_message,
                      row.response_status or 200, row.response_body or {})


commit = attempt_connection.commit
release = attempt_connection.release
