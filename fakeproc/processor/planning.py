"""Which role an attempt takes, and the faults it suffers: rules first, then magic values;
counted rules consumed, and the plan made again when a racing request took a rule's last use.

Roles: the `original` decides the transaction's outcome (the first attempt, or a later one
when no earlier attempt got to decide); a `replay` or `duplicate_error` answers with the
decided outcome; a `waiter` arrived while another attempt was deciding and waits for it; a
`bystander` suffers a fault that charges nothing and decides nothing; `reprocess` decides anew
every time; `mismatch` refuses a changed payload.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ..store import rule_rows, transactions
from ..store.connector_rows import ConnectorSettings
from ..store.transactions import Registered
from . import magic_values, rule_matching
from .attempt import Handling
from .faults import Plan
from .fingerprints import Fingerprinter
from .mismatch import differing_fields
from .rule_matching import Facts, RuleBook
from .wire import PaymentRequest


class Planning:
    """The processor's planning half (mixed into `engine.Processor`)."""

    fingerprints: Fingerprinter
    rulebook: RuleBook

    def _plan(self, request: PaymentRequest, connector: ConnectorSettings, number: int,
              deciding: bool, skip: tuple[int, ...] = (),
              earlier: Registered | None = None) -> Plan:
        """Rules first, then magic values, each filling only what is still open; the outcome
        is planned only for an attempt that decides it. Rules that fired on an `earlier`
        attempt of the transaction apply again without being counted."""
        facts = Facts(connector.unique_name, request, self.fingerprints, number,
                      rule_matching.fired_in([earlier.fired_before]) if earlier else frozenset())
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
        if differing_fields(registered.stored, request, self.fingerprints):
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

    def _settle_role(self, attempt: Handling) -> Handling:
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
