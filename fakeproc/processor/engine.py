"""The processor: one attempt in, one delivery out, with idempotency, retries, in-flight waits
and the faults that rules and magic values ask for.

An attempt registers with its transaction (the idempotency key), takes a role and a plan
(`planning`), and is answered at once or after its delay or hang (here). Deciding is the
`original`'s (`original`), `reprocess` decides again (`reprocess`), a retry of a decided
transaction gets its outcome again (`replay`), one racing the decision waits for it
(`waiter`), one with another payload is refused (`mismatch`); `recording` keeps every attempt.
"""

from __future__ import annotations

from datetime import datetime

from ..store import attempt_connection, transactions
from ..store.connector_rows import ConnectorSettings
from ..store.transactions import Settlement
from . import delivery as deliveries
from .attempt import Client, Handling, ahead, log, printable
from .clock import Clock
from .delivery import Delivery
from .fingerprints import Fingerprinter
from .ids import IdFactory
from .in_flight import Waiters
from .mismatch import refusal
from .original import Deciding
from .planning import Planning
from .recording import Recording
from .replay import retry_settlement
from .reprocess import Reprocessing
from .rule_matching import RuleBook
from .waiter import Waiting
from .wire import PaymentRequest, answer


class Processor(Planning, Deciding, Reprocessing, Waiting, Recording):
    """Decides outcomes once per transaction and answers every attempt of it."""

    def __init__(self, clock: Clock, ids: IdFactory, fingerprints: Fingerprinter,
                 waiters: Waiters, rulebook: RuleBook, poll_max: float = 0.25):
        self.clock, self.ids, self.fingerprints = clock, ids, fingerprints
        self.waiters, self.rulebook, self.poll_max = waiters, rulebook, poll_max

    def handle(self, request: PaymentRequest, connector: ConnectorSettings, client: Client,
               received_at: datetime | None = None) -> Delivery:
        """Answer one attempt; `received_at` is when it arrived, if the server knows better
        than now."""
        with attempt_connection.unit():
            return self._handle(request, connector, client, received_at or self.clock.now())

    def _handle(self, request: PaymentRequest, connector: ConnectorSettings,
                client: Client, received_at: datetime) -> Delivery:
        first = self._plan(request, connector, 1, deciding=True)
        quick = None
        if first.decides and first.delay is None and first.fault is None and not first.counted:
            quick = self._settlement(request, connector, first.outcome, ordinal=1)
        claim_until = self._deadline(received_at, first) if quick is None and first.decides \
            else None
        if first.holds:
            # It will be held for seconds: prompt requests may write first.
            attempt_connection.be_patient()
        registered = transactions.register(
            self._transaction_values(request, connector, received_at), quick, claim_until)
        if registered.number > 1:
            # Attempts a crashed process left open end here: a retry is when Twilio cares.
            transactions.interrupt_abandoned(registered.transaction_pk, received_at)
            log.info("retry connector=%s transaction_id=%s attempt=%d gap=%.2fs",
                     connector.unique_name, printable(request.transaction_id),
                     registered.number, registered.gap_seconds or 0.0)
        attempt = self._settle_role(Handling(request, connector, registered, received_at,
                                             *self._role(request, connector, registered,
                                                         first, received_at)))
        result = self._immediate(attempt)
        attempt_pk = transactions.record_attempt(self._attempt_values(attempt, client, result))
        if result is not None:
            if self._needs_refresh(attempt, result, self._is_late(attempt, self.clock.now())):
                transactions.refresh_flags(registered.transaction_pk)
            transactions.commit()
            self.waiters.notify(registered.transaction_pk)
            return result
        transactions.release()
        result, due = self._later(attempt)
        self._close(attempt, attempt_pk, result, due)
        self.waiters.notify(registered.transaction_pk)
        self.clock.sleep_until(due)
        return result

    def _immediate(self, attempt: Handling) -> Delivery | None:
        """The delivery when it needs no waiting, else None and the attempt stays open."""
        plan, registered = attempt.plan, attempt.registered
        if attempt.role == "waiter" or plan.holds:
            return None
        if attempt.role == "mismatch":
            transactions.flag_violation(registered.transaction_pk)
            return self._deliver(attempt, refusal(attempt, self.fingerprints))
        return self._deliver(attempt, self._outcome_now(attempt))

    def _later(self, attempt: Handling) -> tuple[Delivery, datetime]:
        """Sleep out a delay, decide or wait for the decision, then hang if asked to; returns
        the delivery and when it is due.

        Both count from the request's arrival, not from the end of its intake, and the writes
        that end a held request are done a little ahead of its due time (`ahead`): hundreds
        of held requests that arrived together also end together, and their writes queue."""
        attempt_connection.be_patient()
        plan = attempt.plan
        delay_ends = self.clock.after(attempt.received_at, plan.delay or 0.0)
        self.clock.sleep_until(ahead(attempt.received_at, delay_ends))
        if attempt.role == "waiter":
            settlement = self._await_settlement(attempt)
        else:
            settlement = self._outcome_now(attempt)
        due = delay_ends
        if plan.fault and plan.fault.kind == "hang":
            transactions.release()
            self.waiters.notify(attempt.registered.transaction_pk)
            due = self.clock.after(delay_ends, plan.fault.seconds)
            self.clock.sleep_until(ahead(delay_ends, due))
        return self._deliver(attempt, settlement), due

    def _outcome_now(self, attempt: Handling) -> Settlement | None:
        """The settlement this attempt answers with, by its role (None: nothing decided)."""
        role = attempt.role
        if role == "original":
            return self._decide_original(attempt)
        if role == "reprocess":
            return self._decide_again(attempt)
        if role == "bystander":
            return None
        return retry_settlement(role, attempt.request, attempt.registered.settlement)

    def _deliver(self, attempt: Handling, settlement: Settlement | None) -> Delivery:
        request, plan = attempt.request, attempt.plan
        if settlement is None:
            status, body, result_id = 200, answer(request.method, None), None
        else:
            status, body, result_id = (settlement.response_status, settlement.response_body,
                                       settlement.result_id)
        if plan.parameters:
            body = {**body, "parameters": {**body.get("parameters", {}), **plan.parameters}}
        if plan.fault is not None:
            return deliveries.broken(plan.fault, request.method, body, result_id)
        return deliveries.answer(status, body, result_id)


__all__ = ["Client", "Processor"]
