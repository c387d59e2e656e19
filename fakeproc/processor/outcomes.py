"""What a processor in test or open mode decides for a request: approve, or decline with a code."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from . import cards
from .wire import PaymentRequest

MESSAGES = {
    "incorrect_number": "The card number is incorrect.",
    "invalid_expiry_month": "The card's expiration month is invalid.",
    "invalid_expiry_year": "The card's expiration year is invalid.",
    "expired_card": "The card has expired.",
    "invalid_cvc": "The card's security code is invalid.",
    "incorrect_cvc": "The card's security code is incorrect.",
    "incorrect_zip": "The card's postal code is incorrect.",
    "test_mode_live_card": "The card or account is not a test number; "
                           "a connector in test mode accepts only the TEST-mode numbers.",
    "invalid_routing_number": "The bank routing number is invalid.",
    "do_not_honor": "The card was declined: do not honor.",
    "insufficient_funds": "The card has insufficient funds.",
    "card_velocity_exceeded": "The card has exceeded its spending velocity.",
    "lost_card": "The card was reported lost.",
    "stolen_card": "The card was reported stolen.",
    "fraudulent": "The payment was declined as fraudulent.",
    "card_declined": "The card was declined.",
    "generic_decline": "The payment was declined.",
    "processing_error": "An error occurred while processing the payment.",
    "duplicate_transaction": "This transaction_id was already processed.",
}


@dataclass(frozen=True)
class Outcome:
    """The decision for a transaction: approved, or declined with an error code and message."""

    error_code: str | None = None
    error_message: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def approved(self) -> bool:
        return self.error_code is None

    @classmethod
    def decline(cls, code: str, message: str | None = None, **parameters: Any) -> Outcome:
        return cls(code, message or MESSAGES.get(code, "The payment was declined."), parameters)


APPROVED = Outcome()


def screen(request: PaymentRequest, mode: str, today: date) -> Outcome:
    """The checks of a processor, first failure wins; `mode` is `test` or `open`."""
    if request.is_card:
        return _screen_card(request, mode, today)
    if not cards.aba_routing_valid(request.routing_number or ""):
        return Outcome.decline("invalid_routing_number")
    if mode == "test" and request.number not in cards.TEST_BANK_ACCOUNTS:
        return Outcome.decline("test_mode_live_card")
    return APPROVED


def _screen_card(request: PaymentRequest, mode: str, today: date) -> Outcome:
    number = request.number
    is_test_card = number in cards.TEST_CARDS
    if not is_test_card and not cards.luhn_valid(number):
        return Outcome.decline("incorrect_number")
    month, year = request.expiry_month or "", request.expiry_year or ""
    if not cards.is_digits(month) or len(month) > 2 or not 1 <= int(month) <= 12:
        return Outcome.decline("invalid_expiry_month")
    if not cards.is_digits(year) or len(year) not in (2, 4):
        return Outcome.decline("invalid_expiry_year")
    full_year = int(year) + (2000 if len(year) == 2 else 0)
    # A card is good through the last day of its expiry month.
    if (full_year, int(month)) < (today.year, today.month):
        return Outcome.decline("expired_card")
    if request.cvv is not None:
        expected = 4 if request.brand == "amex" else 3
        if not cards.is_digits(request.cvv) or len(request.cvv) != expected:
            return Outcome.decline("invalid_cvc")
    if mode == "test" and not is_test_card:
        return Outcome.decline("test_mode_live_card")
    return APPROVED
