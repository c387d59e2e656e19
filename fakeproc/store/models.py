"""Tables: connectors, transactions, their attempts, and settings. No card data ever lands here."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)

JSONValue = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator):
    """Timestamps stored as naive UTC (SQLite has no zones) and read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None else None


class Setting(db.Model):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Connector(db.Model):
    __tablename__ = "connectors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unique_name: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str | None] = mapped_column(String(255), index=True)
    # HMAC of the password under the store's key: fast to check on every request, useless to read.
    password_digest: Mapped[str | None] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(8), default="test")
    idempotency: Mapped[str] = mapped_column(String(16), default="replay")
    magic_values: Mapped[bool] = mapped_column(Boolean, default=True)
    timeout_seconds: Mapped[float] = mapped_column(Float, default=10.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Transaction(db.Model):
    """One (connector, transaction_id): its outcome is decided once, whatever the retries."""

    __tablename__ = "transactions"
    # Few indexes: every charge writes this table, and lists page newest first by id, which a
    # filter on a common status, orphaned or retried walks without an index of its own. Three
    # filters match too few rows for that walk at a million rows: a connector (its rows by id),
    # a last 4 (a rare one), and in flight (a partial index that holds only the open rows).
    __table_args__ = (
        UniqueConstraint("connector", "transaction_id", name="uq_transactions_connector_txid"),
        Index("ix_transactions_connector_id", "connector", "id"),
        Index("ix_transactions_last4_id", "last4", "id"),
        Index("ix_transactions_in_flight", "id", sqlite_where=text("status = 'in_flight'"),
              postgresql_where=text("status = 'in_flight'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    transaction_id: Mapped[str] = mapped_column(String(255), index=True)
    method: Mapped[str] = mapped_column(String(8))
    payment_method: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    result_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSONValue, nullable=True)
    # Thousandths of the currency unit: exact on every database.
    amount_millis: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(16))
    card_brand: Mapped[str | None] = mapped_column(String(16))
    last4: Mapped[str | None] = mapped_column(String(4))
    fingerprint: Mapped[str] = mapped_column(String(64))
    routing_number: Mapped[str | None] = mapped_column(String(32))
    postal_code: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[Any] = mapped_column(JSONValue, nullable=True)
    parameters: Mapped[Any] = mapped_column(JSONValue, nullable=True)
    attempt_count: Mapped[int] = mapped_column(Integer, default=1)
    # How many charges or tokens were issued: more than one only under `reprocess`.
    issued_count: Mapped[int] = mapped_column(Integer, default=0)
    orphaned: Mapped[bool] = mapped_column(Boolean, default=False)
    protocol_violation: Mapped[bool] = mapped_column(Boolean, default=False)
    # While in flight, when the processing attempt promised to be done (for waiting retries).
    settle_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Attempt(db.Model):
    """One request of a transaction, as received and as answered."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("transaction_pk", "number", name="uq_attempts_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_pk: Mapped[int] = mapped_column(ForeignKey("transactions.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # While open: when it should have ended at the latest. Past that, its process is gone and
    # the attempt is marked `interrupted` (see store.sweep).
    expected_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    gap_seconds: Mapped[float | None] = mapped_column(Float)
    delivery: Mapped[str | None] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    result_id: Mapped[str | None] = mapped_column(String(40))
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    # The answer carried the outcome in a well-formed body (not a fault, not garbled).
    intact: Mapped[bool] = mapped_column(Boolean, default=True)
    protocol_violation: Mapped[bool] = mapped_column(Boolean, default=False)
    rules: Mapped[Any] = mapped_column(JSONValue, nullable=True)
    request: Mapped[Any] = mapped_column(JSONValue, nullable=True)
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)


class Rule(db.Model):
    """A fault armed by a QA engineer: a match, an action and a lifetime.

    Card numbers and CVVs in a match are kept as keyed fingerprints, never as given.
    """

    __tablename__ = "rules"
    __table_args__ = (Index("ix_rules_live", "enabled", "priority", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    match: Mapped[Any] = mapped_column(JSONValue)
    action: Mapped[Any] = mapped_column(JSONValue)
    remaining: Mapped[int | None] = mapped_column(Integer)
    probability: Mapped[float] = mapped_column(Float, default=1.0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    note: Mapped[str | None] = mapped_column(String(255))
    fired: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
