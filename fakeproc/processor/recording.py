"""What the store keeps of each attempt and transaction, and when an attempt is late."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..store import transactions
from ..store.connector_rows import ConnectorSettings
from .attempt import SETTLE_GRACE_SECONDS, Client, Handling, millis
from .cards import redact_numbers
from .clock import Clock
from .delivery import Delivery
from .fingerprints import Fingerprinter
from .wire import PaymentRequest

# What an attempt is recorded as: a waiter is a replay that had to wait for the original.
_KINDS = {"bystander": "fault"}


class Recording:
    """The processor's recording half (mixed into `engine.Processor`)."""

    clock: Clock
    fingerprints: Fingerprinter

    def _close(self, attempt: Handling, attempt_pk: int, result: Delivery,
               due: datetime) -> None:
        responded_at = max(due, self.clock.now())
        late = self._is_late(attempt, responded_at)
        transactions.close_attempt(attempt_pk, attempt.registered.transaction_pk,
                            outcome_values(result, responded_at, late),
                            refresh=self._needs_refresh(attempt, result, late))
        transactions.release()  # the attempt may still wait for its due time: hold no connection

    def _needs_refresh(self, attempt: Handling, result: Delivery, late: bool) -> bool:
        """Whether the orphan flag or an undecided status can move with this attempt."""
        stored = attempt.registered.stored
        return (late or not result.intact or attempt.role in ("bystander", "waiter")
                or bool(stored and stored.orphaned))

    def _is_late(self, attempt: Handling, responded_at: datetime) -> bool:
        budget = self.clock.scaled(attempt.connector.timeout_seconds)
        return (responded_at - attempt.received_at).total_seconds() > budget

    def _transaction_values(self, request: PaymentRequest, connector: ConnectorSettings,
                            received_at: datetime) -> dict:
        return {
            "connector": connector.unique_name, "transaction_id": request.transaction_id,
            "method": request.method, "payment_method": request.payment_method,
            "status": "in_flight", "amount_millis": millis(request),
            "currency": request.currency, "card_brand": request.brand, "last4": request.last4,
            "fingerprint": self.fingerprints.of(request), "routing_number": request.routing_number,
            "postal_code": request.postal_code, "description": request.masked.get("description"),
            "parameters": request.masked.get("parameters"), "attempt_count": 1,
            "orphaned": False, "protocol_violation": False,
            "created_at": received_at, "last_attempt_at": received_at,
        }

    def _attempt_values(self, attempt: Handling, client: Client,
                        result: Delivery | None) -> dict:
        values = {
            "transaction_pk": attempt.registered.transaction_pk,
            "number": attempt.registered.number, "kind": _KINDS.get(attempt.role, attempt.role)
            if attempt.role != "waiter" else attempt.connector.idempotency,
            "received_at": attempt.received_at, "gap_seconds": attempt.registered.gap_seconds,
            "protocol_violation": attempt.role == "mismatch", "rules": list(attempt.plan.fired),
            "request": attempt.request.masked, "client_ip": client.address,
            "user_agent": redact_numbers(client.user_agent) if client.user_agent else None,
            "responded_at": None, "delivery": None,
            "status_code": None, "response_body": None, "result_id": None, "late": False,
            "intact": True, "expected_by": None,
        }
        if result is not None:
            responded_at = self.clock.now()
            values.update(outcome_values(result, responded_at,
                                          self._is_late(attempt, responded_at)))
        else:
            values["expected_by"] = self._expected_by(attempt)
        return values

    def _expected_by(self, attempt: Handling) -> datetime:
        """When an open attempt should have ended at the latest: its delay and hang, after
        the deciding attempt's deadline for a waiter, and the grace."""
        plan, start = attempt.plan, attempt.received_at
        if attempt.role == "waiter":
            claim = transactions.state(attempt.registered.transaction_pk).settle_by
            start = max(claim or start, start)
        hang = plan.fault.seconds if plan.fault and plan.fault.kind == "hang" else 0.0
        seconds = (plan.delay or 0.0) + (hang or 0.0) + SETTLE_GRACE_SECONDS
        return start + timedelta(seconds=self.clock.scaled(seconds))


def outcome_values(result: Delivery, responded_at: datetime, late: bool) -> dict:
    return {"responded_at": responded_at, "delivery": result.record,
            "status_code": result.status if result.record == "response" else None,
            "response_body": (result.raw or result.body).decode("utf-8", "replace")
            if result.record == "response" else None,
            "result_id": result.result_id, "late": late, "intact": result.intact}
