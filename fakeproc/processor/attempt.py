"""One attempt in the processor's hands, and what the modules of its roles share."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..store.connector_rows import ConnectorSettings
from ..store.transactions import Registered
from .faults import Plan
from .wire import PaymentRequest

log = logging.getLogger("fakeproc")

# How long past its expected end an attempt holds the right to decide, and stays open, before
# it is taken for dead: a retry then takes the decision over, and the attempt is marked
# interrupted (configured seconds, scaled like everything else).
SETTLE_GRACE_SECONDS = 30.0

# A held request does the writes that end it this much ahead of its due time (real seconds).
AHEAD_FRACTION = 0.05
AHEAD_MAX_SECONDS = 0.5


@dataclass(frozen=True)
class Client:
    address: str | None
    user_agent: str | None


@dataclass(frozen=True)
class Handling:
    """An attempt being answered: what came, for which connector, how it registered, when it
    arrived, the role it took and the faults it suffers."""

    request: PaymentRequest
    connector: ConnectorSettings
    registered: Registered
    received_at: datetime
    role: str
    plan: Plan


def ahead(start: datetime, end: datetime) -> datetime:
    """When to wake for work due at `end` after a wait since `start`: a little early, by a
    twentieth of the wait and at most half a second, however time is scaled."""
    lead = min(AHEAD_MAX_SECONDS, (end - start).total_seconds() * AHEAD_FRACTION)
    return end - timedelta(seconds=max(lead, 0.0))


def millis(request: PaymentRequest) -> int | None:
    return int(request.amount * 1000) if request.amount is not None else None


def printable(text: str) -> str:
    """A transaction_id safe for a one-line log record."""
    return "".join(c if c.isprintable() and c != " " else f"\\x{ord(c):02x}" for c in text)
