"""The processor: one attempt in, one delivery out, with idempotency, retries, in-flight waits
and the faults that rules and magic values ask for.

Each attempt takes one role: the `original` decides the transaction's outcome (the first
attempt, or a later one when no earlier attempt got to decide); a `replay` or `duplicate_error`
answers with the decided outcome; a `waiter` arrived while another attempt was deciding and
waits for it; a `bystander` suffers a fault that charges nothing and decides nothing;
`reprocess` decides anew every time; `mismatch` refuses a changed payload.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from . import delivery as deliveries
from ..store import attempt_connection, rule_rows, transactions
from . import magic_values, rule_matching
from ..store.connector_rows import ConnectorSettings
from .delivery import Delivery
from .faults import Plan
from .ids import IdFactory
from .in_flight import Waiters
from .outcomes import Outcome, screen
from .rule_matching import Facts, RuleBook
from .fingerprints import Fingerprinter
from ..store.transactions import Registered, Settlement, Stored
from .clock import Clock
from .wire import PaymentRequest, answer

log = logging.getLogger("fakeproc")

# What an attempt is recorded as: a waiter is a replay that had to wait for the original.
_KINDS = {"bystander": "fault"}

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
class _Attempt:
    request: PaymentRequest
    connector: ConnectorSettings
    registered: Registered
    received_at: datetime
    role: str
    plan: Plan


class Processor:
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
            attempt_connection.be_patient()  # it will be held for seconds: prompt requests may write first
        registered = transactions.register(self._transaction_values(request, connector, received_at),
                                    quick, claim_until)
        if registered.number > 1:
            # Attempts a crashed process left open end here: a retry is when Twilio cares.
            transactions.interrupt_abandoned(registered.transaction_pk, received_at)
            log.info("retry connector=%s transaction_id=%s attempt=%d gap=%.2fs",
                     connector.unique_name, _printable(request.transaction_id),
                     registered.number, registered.gap_seconds or 0.0)
        attempt = self._settle_role(_Attempt(request, connector, registered, received_at,
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

    # -- roles and plans --------------------------------------------------------------------

    def _plan(self, request: PaymentRequest, connector: ConnectorSettings, number: int,
              deciding: bool, skip: tuple[int, ...] = (),
              earlier: Registered | None = None) -> Plan:
        """Rules first, then magic values, each filling only what is still open; the outcome
        is planned only for an attempt that decides it. Rules that fired on an `earlier`
        attempt of the transaction apply again without being counted."""
        facts = Facts(connector.unique_name, request, self.fingerprints.of(request)
                      if request.is_card else None,
                      self.fingerprints.digest("cvv:" + request.cvv) if request.cvv else None,
                      number, rule_matching.fired_in([earlier.fired_before]) if earlier else frozenset())
        by_magic = magic_values.plan(request, number) if connector.magic_values else Plan()
        plan = self.rulebook.delivery(facts, skip).merged(by_magic.without_outcome())
        if not (deciding and plan.decides):
            return plan.without_outcome()
        if plan.outcome is None:
            plan = plan.merged(self.rulebook.outcome(facts, skip))
        return plan.merged(Plan(outcome=by_magic.outcome, fired=by_magic.fired))

    def _role(self, request: PaymentRequest, connector: ConnectorSettings,
              registered: Registered, first: Plan, received_at: datetime) -> tuple[str, Plan]:
        if registered.is_new:
            return ("original" if registered.claimed or registered.settlement else "bystander",
                    first)
        number = registered.number
        if self._differing_fields(registered.stored, request):
            return "mismatch", Plan()
        if connector.idempotency == "reprocess":
            return "reprocess", self._plan(request, connector, number, True, earlier=registered)
        if registered.settlement is not None:
            return connector.idempotency, self._plan(request, connector, number, False,
                                                     earlier=registered)
        plan = self._plan(request, connector, number, deciding=True, earlier=registered)
        if not plan.decides:
            return "bystander", plan
        if transactions.claim(registered.transaction_pk, self._deadline(received_at, plan),
                       received_at):
            return "original", plan
        return "waiter", self._plan(request, connector, number, False, earlier=registered)

    def _settle_role(self, attempt: _Attempt) -> _Attempt:
        """Consume the counted rules the plan uses; a rule another request used up is skipped
        and the plan made again without it."""
        plan, skip, taken = attempt.plan, (), set()
        if not plan.rules:
            return attempt
        deciding = attempt.role in ("original", "reprocess", "bystander")
        while True:
            fresh = [rule_id for rule_id in plan.counted if rule_id not in taken]
            used_up = [rule_id for rule_id in fresh if not rule_rows.consume(rule_id)]
            taken.update(set(fresh) - set(used_up))
            if not used_up:
                break
            skip += tuple(used_up)
            plan = self._plan(attempt.request, attempt.connector, attempt.registered.number,
                              deciding, skip, earlier=attempt.registered)
        rule_rows.count_firing(set(plan.rules) - taken)
        if attempt.role == "original" and not plan.decides:
            # The plan that claimed the decision lost its rule to a racing request.
            transactions.unclaim(attempt.registered.transaction_pk)
            return replace(attempt, plan=plan, role="bystander")
        if attempt.role == "bystander" and plan.decides:
            # The fault that kept this attempt from deciding went to a racing request: decide
            # after all, or wait for the attempt that is deciding.
            deadline = self._deadline(attempt.received_at, plan)
            if transactions.claim(attempt.registered.transaction_pk, deadline, attempt.received_at):
                return replace(attempt, plan=plan, role="original")
            return replace(attempt, plan=plan.without_outcome(), role="waiter")
        return replace(attempt, plan=plan)

    # -- answering --------------------------------------------------------------------------

    def _immediate(self, attempt: _Attempt) -> Delivery | None:
        """The delivery when it needs no waiting, else None and the attempt stays open."""
        plan, registered = attempt.plan, attempt.registered
        if attempt.role == "waiter" or plan.holds:
            return None
        if attempt.role == "mismatch":
            transactions.flag_violation(registered.transaction_pk)
            return self._deliver(attempt, self._mismatch(attempt))
        return self._deliver(attempt, self._outcome_now(attempt))

    def _later(self, attempt: _Attempt) -> tuple[Delivery, datetime]:
        """Sleep out a delay, decide or wait for the decision, then hang if asked to; returns
        the delivery and when it is due.

        Both count from the request's arrival, not from the end of its intake, and the writes
        that end a held request are done a little ahead of its due time (`_ahead`): hundreds
        of held requests that arrived together also end together, and their writes queue."""
        attempt_connection.be_patient()
        plan = attempt.plan
        delay_ends = self.clock.after(attempt.received_at, plan.delay or 0.0)
        self.clock.sleep_until(_ahead(attempt.received_at, delay_ends))
        if attempt.role == "waiter":
            settlement = self._await_settlement(attempt)
        else:
            settlement = self._outcome_now(attempt)
        due = delay_ends
        if plan.fault and plan.fault.kind == "hang":
            transactions.release()
            self.waiters.notify(attempt.registered.transaction_pk)
            due = self.clock.after(delay_ends, plan.fault.seconds)
            self.clock.sleep_until(_ahead(delay_ends, due))
        return self._deliver(attempt, settlement), due

    def _outcome_now(self, attempt: _Attempt) -> Settlement | None:
        role, registered, request = attempt.role, attempt.registered, attempt.request
        if role == "original":
            if registered.settlement is not None:
                return registered.settlement
            settlement = self._settlement(request, attempt.connector, attempt.plan.outcome, 1)
            # After a takeover another attempt may have decided first: its outcome holds.
            return transactions.settle(registered.transaction_pk, settlement, self.clock.now())
        if role == "reprocess":
            if not attempt.plan.decides:  # a fault that charges nothing processes nothing
                return None
            outcome = self._decide(request, attempt.connector, attempt.plan.outcome)
            ordinal = transactions.count_issue(registered.transaction_pk) if outcome.approved else 0
            return self._settlement(request, attempt.connector, outcome, ordinal)
        if role == "bystander":
            return None
        return self._retry_settlement(role, request, registered.settlement)

    def _deliver(self, attempt: _Attempt, settlement: Settlement | None) -> Delivery:
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

    def _await_settlement(self, attempt: _Attempt) -> Settlement | None:
        """Wait until the deciding attempt settles; local wake-ups, else backed-off polling."""
        transaction_pk, poll = attempt.registered.transaction_pk, 0.005
        while True:
            with self.waiters.watch(transaction_pk) as settled_here:
                current = transactions.state(transaction_pk)
                transactions.release()
                if current.settlement is not None:
                    return self._retry_settlement(attempt.connector.idempotency,
                                                  attempt.request, current.settlement)
                give_up_at = current.settle_by or current.created_at
                if self.clock.now() > give_up_at:
                    # The deciding attempt is past its deadline: its process died (or is
                    # hopelessly stuck). Decide in its place; the first settlement wins.
                    taken = self._take_over(attempt)
                    if taken is not None:
                        return taken
                settled_here.wait(poll)
            poll = min(poll * 2, self.poll_max)

    def _take_over(self, attempt: _Attempt) -> Settlement | None:
        now, transaction_pk = self.clock.now(), attempt.registered.transaction_pk
        plan = self._plan(attempt.request, attempt.connector, attempt.registered.number,
                          deciding=True, earlier=attempt.registered)
        if not transactions.claim(transaction_pk, self._deadline(now, Plan()), now):
            return None
        log.warning("takeover connector=%s transaction_id=%s attempt=%d: the deciding attempt "
                    "never finished", attempt.connector.unique_name,
                    _printable(attempt.request.transaction_id), attempt.registered.number)
        transactions.interrupt_abandoned(transaction_pk, now)
        settlement = transactions.settle(transaction_pk, self._settlement(
            attempt.request, attempt.connector, plan.outcome, 1), now)
        transactions.commit()
        self.waiters.notify(transaction_pk)
        return self._retry_settlement(attempt.connector.idempotency, attempt.request, settlement)

    # -- deciding ---------------------------------------------------------------------------

    def _decide(self, request: PaymentRequest, connector: ConnectorSettings,
                outcome: Outcome | None) -> Outcome:
        return outcome or screen(request, connector.mode, self.clock.now().date())

    def _settlement(self, request: PaymentRequest, connector: ConnectorSettings,
                    outcome: Outcome | None, ordinal: int, issue: bool = True) -> Settlement:
        decided = self._decide(request, connector, outcome)
        result_id = None
        if decided.approved and issue:
            result_id = self.ids.issue(request.method, connector.unique_name,
                                       request.transaction_id, ordinal)
        body = answer(request.method, result_id, decided.error_code, decided.error_message,
                      decided.parameters)
        status = "succeeded" if decided.approved else "declined"
        return Settlement(status, result_id, decided.error_code, decided.error_message, 200, body)

    def _retry_settlement(self, policy: str, request: PaymentRequest,
                          original: Settlement | None) -> Settlement | None:
        if policy != "duplicate_error" or original is None:
            return original
        message = f"transaction_id {request.transaction_id} was already processed"
        body = answer(request.method, original.result_id, "duplicate_transaction", message)
        return replace(original, error_code="duplicate_transaction", error_message=message,
                       response_body=body)

    def _mismatch(self, attempt: _Attempt) -> Settlement:
        request = attempt.request
        differing = self._differing_fields(attempt.registered.stored, request)
        message = (f"transaction_id {request.transaction_id} was already used with a "
                   f"different {', '.join(differing)}")
        return Settlement("declined", None, "duplicate_transaction", message, 200,
                          answer(request.method, None, "duplicate_transaction", message))

    def _differing_fields(self, stored: Stored | None, request: PaymentRequest) -> list[str]:
        if stored is None:
            return []
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

    def _deadline(self, received_at: datetime, plan: Plan) -> datetime:
        seconds = (plan.delay or 0.0) + SETTLE_GRACE_SECONDS
        return received_at + timedelta(seconds=self.clock.scaled(seconds))

    # -- recording --------------------------------------------------------------------------

    def _close(self, attempt: _Attempt, attempt_pk: int, result: Delivery,
               due: datetime) -> None:
        responded_at = max(due, self.clock.now())
        late = self._is_late(attempt, responded_at)
        transactions.close_attempt(attempt_pk, attempt.registered.transaction_pk,
                            _outcome_values(result, responded_at, late),
                            refresh=self._needs_refresh(attempt, result, late))
        transactions.release()  # the attempt may still wait for its due time: hold no connection

    def _needs_refresh(self, attempt: _Attempt, result: Delivery, late: bool) -> bool:
        """Whether the orphan flag or an undecided status can move with this attempt."""
        stored = attempt.registered.stored
        return (late or not result.intact or attempt.role in ("bystander", "waiter")
                or bool(stored and stored.orphaned))

    def _is_late(self, attempt: _Attempt, responded_at: datetime) -> bool:
        budget = self.clock.scaled(attempt.connector.timeout_seconds)
        return (responded_at - attempt.received_at).total_seconds() > budget

    def _transaction_values(self, request: PaymentRequest, connector: ConnectorSettings,
                            received_at: datetime) -> dict:
        return {
            "connector": connector.unique_name, "transaction_id": request.transaction_id,
            "method": request.method, "payment_method": request.payment_method,
            "status": "in_flight", "amount_millis": _millis(request),
            "currency": request.currency, "card_brand": request.brand, "last4": request.last4,
            "fingerprint": self.fingerprints.of(request), "routing_number": request.routing_number,
            "postal_code": request.postal_code, "description": request.masked.get("description"),
            "parameters": request.masked.get("parameters"), "attempt_count": 1,
            "orphaned": False, "protocol_violation": False,
            "created_at": received_at, "last_attempt_at": received_at,
        }

    def _attempt_values(self, attempt: _Attempt, client: Client,
                        result: Delivery | None) -> dict:
        values = {
            "transaction_pk": attempt.registered.transaction_pk,
            "number": attempt.registered.number, "kind": _KINDS.get(attempt.role, attempt.role)
            if attempt.role != "waiter" else attempt.connector.idempotency,
            "received_at": attempt.received_at, "gap_seconds": attempt.registered.gap_seconds,
            "protocol_violation": attempt.role == "mismatch", "rules": list(attempt.plan.fired),
            "request": attempt.request.masked, "client_ip": client.address,
            "user_agent": client.user_agent, "responded_at": None, "delivery": None,
            "status_code": None, "response_body": None, "result_id": None, "late": False,
            "intact": True, "expected_by": None,
        }
        if result is not None:
            responded_at = self.clock.now()
            values.update(_outcome_values(result, responded_at,
                                          self._is_late(attempt, responded_at)))
        else:
            values["expected_by"] = self._expected_by(attempt)
        return values

    def _expected_by(self, attempt: _Attempt) -> datetime:
        """When an open attempt should have ended at the latest: its delay and hang, after
        the deciding attempt's deadline for a waiter, and the grace."""
        plan, start = attempt.plan, attempt.received_at
        if attempt.role == "waiter":
            claim = transactions.state(attempt.registered.transaction_pk).settle_by
            start = max(claim or start, start)
        hang = plan.fault.seconds if plan.fault and plan.fault.kind == "hang" else 0.0
        seconds = (plan.delay or 0.0) + (hang or 0.0) + SETTLE_GRACE_SECONDS
        return start + timedelta(seconds=self.clock.scaled(seconds))


def _outcome_values(result: Delivery, responded_at: datetime, late: bool) -> dict:
    return {"responded_at": responded_at, "delivery": result.record,
            "status_code": result.status if result.record == "response" else None,
            "response_body": (result.raw or result.body).decode("utf-8", "replace")
            if result.record == "response" else None,
            "result_id": result.result_id, "late": late, "intact": result.intact}


def _ahead(start: datetime, end: datetime) -> datetime:
    """When to wake for work due at `end` after a wait since `start`: a little early, by a
    twentieth of the wait and at most half a second, however time is scaled."""
    lead = min(AHEAD_MAX_SECONDS, (end - start).total_seconds() * AHEAD_FRACTION)
    return end - timedelta(seconds=max(lead, 0.0))


def _millis(request: PaymentRequest) -> int | None:
    return int(request.amount * 1000) if request.amount is not None else None


def _printable(text: str) -> str:
    """A transaction_id safe for a one-line log record."""
    return "".join(c if c.isprintable() and c != " " else f"\\x{ord(c):02x}" for c in text)


__all__ = ["Client", "Processor"]
