"""The original attempt decides a transaction's outcome, once: rules and magic values first,
else what a processor in test or open mode decides; an approval issues the id."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..store import transactions
from ..store.connector_rows import ConnectorSettings
from ..store.transactions import Settlement
from .attempt import SETTLE_GRACE_SECONDS, Handling
from .clock import Clock
from .faults import Plan
from .ids import IdFactory
from .outcomes import Outcome, screen
from .wire import PaymentRequest, answer


class Deciding:
    """The processor's deciding half (mixed into `engine.Processor`)."""

    clock: Clock
    ids: IdFactory

    def _decide_original(self, attempt: Handling) -> Settlement:
        """The original decides the outcome once; after a takeover another attempt may have
        decided first, and its outcome holds."""
        registered, request = attempt.registered, attempt.request
        if registered.settlement is not None:
            return registered.settlement
        settlement = self._settlement(request, attempt.connector, attempt.plan.outcome, 1)
        held = transactions.settle(registered.transaction_pk, settlement, self.clock.now())
        if held is settlement and registered.number > 1:  # an earlier original died undecided
            transactions.label_takeover(registered.transaction_pk, registered.number)
        return held

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

    def _deadline(self, received_at: datetime, plan: Plan) -> datetime:
        seconds = (plan.delay or 0.0) + SETTLE_GRACE_SECONDS
        return received_at + timedelta(seconds=self.clock.scaled(seconds))
