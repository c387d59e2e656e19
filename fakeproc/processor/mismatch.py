"""A retry whose payload differs from the original's (method, card or account, amount,
currency) is refused with `duplicate_transaction`, naming the fields that differ."""

from __future__ import annotations

from ..store.transactions import Settlement, Stored
from .attempt import Handling, millis
from .fingerprints import Fingerprinter
from .wire import PaymentRequest, answer


def differing_fields(stored: Stored | None, request: PaymentRequest,
                     fingerprints: Fingerprinter) -> list[str]:
    if stored is None:
        return []
    differing = []
    if stored.method != request.method:
        differing.append("method")
    if stored.payment_method != request.payment_method:
        differing.append("payment method")
    elif stored.fingerprint != fingerprints.of(request):
        differing.append("cardnumber" if request.is_card else "bankaccountnumber")
    if stored.amount_millis != millis(request):
        differing.append("amount")
    if (stored.currency or "").upper() != (request.currency or "").upper():
        differing.append("currency_code")
    return differing


def refusal(attempt: Handling, fingerprints: Fingerprinter) -> Settlement:
    request = attempt.request
    differing = differing_fields(attempt.registered.stored, request, fingerprints)
    message = (f"transaction_id {request.transaction_id} was already used with a "
               f"different {', '.join(differing)}")
    return Settlement("declined", None, "duplicate_transaction", message, 200,
                      answer(request.method, None, "duplicate_transaction", message))
