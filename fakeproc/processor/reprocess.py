"""The `reprocess` policy: no idempotency at all, every attempt decided anew (a deliberate
double-charge bug that the ledger then flags)."""

from __future__ import annotations

from ..store import transactions
from ..store.transactions import Settlement
from .attempt import Handling


class Reprocessing:
    """Mixed into `engine.Processor`; uses the deciding half's `_decide` and `_settlement`."""

    def _decide_again(self, attempt: Handling) -> Settlement | None:
        """Decide anew, as if the transaction were new: a deliberate double-charge bug."""
        request, registered = attempt.request, attempt.registered
        if not attempt.plan.decides:  # a fault that charges nothing processes nothing
            return None
        outcome = self._decide(request, attempt.connector, attempt.plan.outcome)
        ordinal = transactions.count_issue(registered.transaction_pk) if outcome.approved else 0
        return self._settlement(request, attempt.connector, outcome, ordinal)
