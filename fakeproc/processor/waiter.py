"""A retry that arrives while another attempt is deciding waits for it (woken at once in the
same process, polled with a back-off across processes, holding no connection), and takes the
decision over when the deciding attempt is past its deadline: its process is gone."""

from __future__ import annotations

from ..store import transactions
from ..store.transactions import Settlement
from .attempt import Handling, log, printable
from .clock import Clock
from .faults import Plan
from .in_flight import Waiters
from .replay import retry_settlement


class Waiting:
    """The processor's waiting half (mixed into `engine.Processor`)."""

    clock: Clock
    waiters: Waiters
    poll_max: float

    def _await_settlement(self, attempt: Handling) -> Settlement | None:
        """Wait until the deciding attempt settles; local wake-ups, else backed-off polling."""
        transaction_pk, poll = attempt.registered.transaction_pk, 0.005
        while True:
            with self.waiters.watch(transaction_pk) as settled_here:
                current = transactions.state(transaction_pk)
                transactions.release()
                if current.settlement is not None:
                    return retry_settlement(attempt.connector.idempotency,
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

    def _take_over(self, attempt: Handling) -> Settlement | None:
        now, transaction_pk = self.clock.now(), attempt.registered.transaction_pk
        plan = self._plan(attempt.request, attempt.connector, attempt.registered.number,
                          deciding=True, earlier=attempt.registered)
        if not transactions.claim(transaction_pk, self._deadline(now, Plan()), now):
            return None
        log.warning("takeover connector=%s transaction_id=%s attempt=%d: the deciding attempt "
                    "never finished", attempt.connector.unique_name,
                    printable(attempt.request.transaction_id), attempt.registered.number)
        transactions.interrupt_abandoned(transaction_pk, now)
        decided = self._settlement(attempt.request, attempt.connector, plan.outcome, 1)
        settlement = transactions.settle(transaction_pk, decided, now)
        if settlement is decided:  # this attempt decided: it is the original now
            transactions.label_takeover(transaction_pk, attempt.registered.number)
        transactions.commit()
        self.waiters.notify(transaction_pk)
        return retry_settlement(attempt.connector.idempotency, attempt.request, settlement)
