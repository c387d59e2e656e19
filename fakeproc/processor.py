"""The processor: one attempt in, one answer out, with idempotency, retries and in-flight waits."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import magic, store
from .connectors import ConnectorSettings
from .ids import IdFactory
from .inflight import Waiters
from .outcomes import Outcome, screen
from .security import Fingerprinter
from .store import Registered, Settlement, Stored
from .timing import Clock
from .wire import PaymentRequest, answer

log = logging.getLogger("fakeproc")

# How long past its promised end a retry waits for an in-flight attempt before giving up on it.
SETTLE_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Client:
    address: str | None
    user_agent: str | None


@dataclass(frozen=True)
class Answer:
    """What goes back on the wire for one attempt."""

    status: int
    body: dict


@dataclass(frozen=True)
class _Attempt:
    request: PaymentRequest
    connector: ConnectorSettings
    registered: Registered
    received_at: datetime


class Processor:
    """Decides outcomes once per transaction and answers every attempt of it."""

    def __init__(self, clock: Clock, ids: IdFactory, fingerprints: Fingerprinter,
                 waiters: Waiters, poll_max: float = 0.25):
        self.clock, self.ids, self.fingerprints = clock, ids, fingerprints
        self.waiters, self.poll_max = waiters, poll_max

    def handle(self, request: PaymentRequest, connector: ConnectorSettings,
               client: Client) -> Answer:
        received_at = self.clock.now()
        first_plan = self._plan(request, connector, attempt=1)
        immediate = None if first_plan.delay else self._settlement(
            request, connector, self._decide(request, connector, first_plan), ordinal=1)
        registered = store.register(self._transaction_values(request, connector, received_at,
                                                             first_plan), immediate)
        attempt = _Attempt(request, connector, registered, received_at)
        if registered.number > 1:
            log.info("retry connector=%s transaction_id=%s attempt=%d gap=%.2fs",
                     connector.unique_name, _printable(request.transaction_id),
                     registered.number, registered.gap_seconds or 0.0)
        plan = first_plan if registered.is_new else self._plan(request, connector,
                                                               registered.number)
        kind, settlement = self._immediate_answer(attempt, plan)
        attempt_pk = store.record_attempt(self._attempt_values(attempt, kind, plan, client,
                                                               settlement))
        if settlement is not None:
            if registered.stored is not None and registered.stored.orphaned:
                store.refresh_orphan(registered.transaction_pk)
            store.commit()
            return _answer_of(settlement)
        store.release()
        settlement = self._answer_later(attempt, kind, plan)
        self._close(attempt, attempt_pk, settlement)
        self.waiters.notify(registered.transaction_pk)
        return _answer_of(settlement)

    # -- deciding ---------------------------------------------------------------------------

    def _plan(self, request: PaymentRequest, connector: ConnectorSettings,
              attempt: int) -> magic.Plan:
        if not connector.magic_values:
            return magic.NOTHING
        return magic.plan(request, attempt)

    def _decide(self, request: PaymentRequest, connector: ConnectorSettings,
                plan: magic.Plan) -> Outcome:
        return plan.outcome or screen(request, connector.mode, self.clock.now().date())

    def _settlement(self, request: PaymentRequest, connector: ConnectorSettings,
                    outcome: Outcome, ordinal: int) -> Settlement:
        result_id = None
        if outcome.approved:
            result_id = self.ids.issue(request.method, connector.unique_name,
                                       request.transaction_id, ordinal)
        body = answer(request.method, result_id, outcome.error_code, outcome.error_message,
                      outcome.parameters)
        status = "succeeded" if outcome.approved else "declined"
        return Settlement(status, result_id, outcome.error_code, outcome.error_message, 200, body)

    def _immediate_answer(self, attempt: _Attempt,
                          plan: magic.Plan) -> tuple[str, Settlement | None]:
        """The answer when it is known at once, else None and the attempt stays open."""
        registered, request = attempt.registered, attempt.request
        if registered.is_new:
            return "original", registered.settlement
        differing = self._differing_fields(registered.stored, request)
        if differing:
            store.flag_violation(registered.transaction_pk)
            message = (f"transaction_id {request.transaction_id} was already used with a "
                       f"different {', '.join(differing)}")
            return "mismatch", Settlement("declined", None, "duplicate_transaction", message, 200,
                                          answer(request.method, None, "duplicate_transaction",
                                                 message))
        policy = attempt.connector.idempotency
        if policy == "reprocess":
            return "reprocess", None
        if registered.settlement is None or plan.delay:
            return policy, None
        return policy, self._retry_settlement(policy, request, registered.settlement)

    def _answer_later(self, attempt: _Attempt, kind: str, plan: magic.Plan) -> Settlement:
        """Sleep out a delay, then settle a new transaction or wait for the one in flight."""
        request, connector, registered = attempt.request, attempt.connector, attempt.registered
        self.clock.sleep(plan.delay)
        if kind == "original" or kind == "reprocess":
            ordinal = 1 if kind == "original" else store.count_issue(registered.transaction_pk)
            settlement = self._settlement(request, connector,
                                          self._decide(request, connector, plan), ordinal)
            if kind == "original":
                store.settle(registered.transaction_pk, settlement, self.clock.now())
            return settlement
        settled = registered.settlement or self._await_settlement(registered.transaction_pk)
        if settled is None:
            return Settlement("failed", None, "processing_error",
                              "the original attempt of this transaction never finished", 200,
                              answer(request.method, None, "processing_error",
                                     "the original attempt of this transaction never finished"))
        return self._retry_settlement(kind, request, settled)

    def _retry_settlement(self, policy: str, request: PaymentRequest,
                          original: Settlement) -> Settlement:
        if policy != "duplicate_error":
            return original
        message = f"transaction_id {request.transaction_id} was already processed"
        body = answer(request.method, original.result_id, "duplicate_transaction", message)
        return Settlement(original.status, original.result_id, "duplicate_transaction", message,
                          200, body)

    def _await_settlement(self, transaction_pk: int) -> Settlement | None:
        """Wait until the attempt in flight settles; local wake-ups, else backed-off polling."""
        poll = 0.005
        while True:
            with self.waiters.watch(transaction_pk) as settled_here:
                row = store.load(transaction_pk)
                settlement = store.settlement_of(row)
                give_up_at = (row.settle_by or row.created_at) + timedelta(
                    seconds=self.clock.scaled(SETTLE_GRACE_SECONDS))
                store.release()
                if settlement is not None:
                    return settlement
                if self.clock.now() > give_up_at:
                    return None
                settled_here.wait(poll)
            poll = min(poll * 2, self.poll_max)

    def _differing_fields(self, stored: Stored, request: PaymentRequest) -> list[str]:
        differing = []
        if stored.method != request.method:
            differing.append("method")
        if stored.payment_method != request.payment_method:
            differing.append("payment method")
        elif stored.fingerprint != self.fingerprints.of(request):
            differing.append("cardnumber" if request.is_card else "bankaccountnumber")
        if stored.amount_millis != _millis(request):
            differing.append("amount")
        if (stored.currency or "").upper() != (request.currency or "").upper():
            differing.append("currency_code")
        return differing

    # -- recording --------------------------------------------------------------------------

    def _close(self, attempt: _Attempt, attempt_pk: int, settlement: Settlement) -> None:
        responded_at = self.clock.now()
        late = self._is_late(attempt, responded_at)
        values = {"responded_at": responded_at, "delivery": "response",
                  "status_code": settlement.response_status,
                  "response_body": json.dumps(settlement.response_body),
                  "result_id": settlement.result_id, "late": late}
        was_orphaned = bool(attempt.registered.stored and attempt.registered.stored.orphaned)
        store.close_attempt(attempt_pk, attempt.registered.transaction_pk, values,
                            timely=not late, was_orphaned=was_orphaned)
        store.commit()

    def _is_late(self, attempt: _Attempt, responded_at: datetime) -> bool:
        budget = self.clock.scaled(attempt.connector.timeout_seconds)
        return (responded_at - attempt.received_at).total_seconds() > budget

    def _transaction_values(self, request: PaymentRequest, connector: ConnectorSettings,
                            received_at: datetime, plan: magic.Plan) -> dict:
        settle_by = None
        if plan.delay:
            settle_by = received_at + timedelta(seconds=self.clock.scaled(plan.delay))
        return {
            "connector": connector.unique_name, "transaction_id": request.transaction_id,
            "method": request.method, "payment_method": request.payment_method,
            "status": "in_flight", "amount_millis": _millis(request),
            "currency": request.currency, "card_brand": request.brand, "last4": request.last4,
            "fingerprint": self.fingerprints.of(request), "routing_number": request.routing_number,
            "postal_code": request.postal_code, "description": request.masked.get("description"),
            "parameters": request.masked.get("parameters"), "attempt_count": 1,
            "created_at": received_at, "last_attempt_at": received_at, "settle_by": settle_by,
        }

    def _attempt_values(self, attempt: _Attempt, kind: str, plan: magic.Plan, client: Client,
                        settlement: Settlement | None) -> dict:
        values = {
            "transaction_pk": attempt.registered.transaction_pk,
            "number": attempt.registered.number, "kind": kind,
            "received_at": attempt.received_at, "gap_seconds": attempt.registered.gap_seconds,
            "protocol_violation": kind == "mismatch", "rules": list(plan.fired),
            "request": attempt.request.masked, "client_ip": client.address,
            "user_agent": client.user_agent,
        }
        if settlement is not None:
            responded_at = self.clock.now()
            values.update(responded_at=responded_at, delivery="response",
                          status_code=settlement.response_status,
                          response_body=json.dumps(settlement.response_body),
                          result_id=settlement.result_id,
                          late=self._is_late(attempt, responded_at))
        return values


def _answer_of(settlement: Settlement) -> Answer:
    return Answer(settlement.response_status, settlement.response_body)


def _millis(request: PaymentRequest) -> int | None:
    return int(request.amount * 1000) if request.amount is not None else None


def _printable(text: str) -> str:
    """A transaction_id safe for a one-line log record."""
    return "".join(c if c.isprintable() and c != " " else f"\\x{ord(c):02x}" for c in text)
