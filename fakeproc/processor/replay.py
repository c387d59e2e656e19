"""A retry of a decided transaction gets its outcome again: the original answer under the
`replay` policy, `duplicate_transaction` with the original id under `duplicate_error`."""

from __future__ import annotations

from dataclasses import replace

from ..store.transactions import Settlement
from .wire import PaymentRequest, answer


def retry_settlement(policy: str, request: PaymentRequest,
                     original: Settlement | None) -> Settlement | None:
    if policy != "duplicate_error" or original is None:
        return original
    message = f"transaction_id {request.transaction_id} was already processed"
    body = answer(request.method, original.result_id, "duplicate_transaction", message)
    return replace(original, error_code="duplicate_transaction", error_message=message,
                   response_body=body)
