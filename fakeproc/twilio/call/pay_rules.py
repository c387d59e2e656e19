"""`<Pay>` as the `<Pay>` page describes it: its attributes with their defaults and allowed
values, its steps, and what each step accepts from the caller. Where Twilio's behaviour is not
pinned by the page or the contract, the choice is made here, in one place (see the README)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from ...processor import aba_routing_valid, card_types, luhn_valid

CARD, ACH = "credit-card", "ach-debit"
CARD_STEPS = ("payment-card-number", "expiration-date", "security-code", "postal-code")
ACH_STEPS = ("bank-routing-number", "bank-account-number")
PROCESSING = "payment-processing"
CARD_TYPES = ("visa", "mastercard", "amex", "maestro", "discover", "optima", "jcb",
              "diners-club", "enroute")
ACCOUNT_TYPES = ("consumer-checking", "consumer-savings", "commercial-checking")
TOKEN_TYPES = ("one-time", "reusable", "payment-method")
LANGUAGES = ("en-au", "en-ca", "en-gb", "en-in", "en-us", "es-es", "es-mx", "fr-ca", "fr-fr",
             "de-de", "it-it")
ACH_LANGUAGES = ("en-au", "en-ca", "en-gb", "en-in", "en-us")
MAX_CHARGE = Decimal(1_000_000)
# A bank account number shorter than this is refused (invalid-bank-account-number); US
# account numbers run from 4 to 17 digits, and Twilio's own test accounts have 8 and 9.
MIN_ACCOUNT_DIGITS, MAX_ACCOUNT_DIGITS = 5, 17

# Results of a <Pay>, as the action URL gets them.
SUCCESS = "success"
TOO_MANY_FAILED = "too-many-failed-attempts"
CONNECTOR_ERROR = "payment-connector-error"
STAR = "caller-interrupted-with-star"
HUNG_UP = "caller-hung-up"
VALIDATION_ERROR = "validation-error"
INTERNAL_ERROR = "internal-error"


class InvalidAttribute(ValueError):
    """A `<Pay>` attribute outside what the page allows: the Result is validation-error."""


@dataclass(frozen=True)
class PayVerb:
    """A `<Pay>` verb's attributes, parsed and checked, with the page's defaults."""

    payment_method: str = CARD
    bank_account_type: str = "consumer-checking"
    timeout: int = 5
    max_attempts: int = 1
    security_code: bool = True
    postal_code: bool | str = True  # a string: the value used without asking
    min_postal_code_length: int | None = None
    payment_connector: str = "Default"
    token_type: str = "reusable"
    charge_amount: Decimal | None = None
    currency: str = "usd"
    description: str | None = None
    valid_card_types: tuple[str, ...] = ("visa", "mastercard", "amex")
    language: str = "en-us"
    action: str | None = None
    status_callback: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def method(self) -> str:
        """`charge` when chargeAmount is above 0, else `tokenize`."""
        return "charge" if self.charge_amount is not None and self.charge_amount > 0 \
            else "tokenize"

    @property
    def steps(self) -> tuple[str, ...]:
        if self.payment_method == ACH:
            return ACH_STEPS
        return tuple(step for step in CARD_STEPS
                     if (step != "security-code" or self.security_code)
                     and (step != "postal-code" or self.postal_code is True))


def parse_verb(attrs: dict[str, str], parameters: dict[str, str]) -> PayVerb:
    """The attributes of a `<Pay>`; InvalidAttribute names the first one out of bounds."""
    def pick(name: str, allowed: tuple[str, ...], default: str) -> str:
        value = attrs.get(name, default).strip().lower()
        if value not in allowed:
            raise InvalidAttribute(f"{name}={attrs.get(name)!r} (not one of "
                                   f"{', '.join(allowed)})")
        return value

    if attrs.get("input", "dtmf").strip().lower() != "dtmf":
        raise InvalidAttribute(f"input={attrs['input']!r} (only dtmf is supported)")
    method = pick("paymentMethod", (CARD, ACH), CARD)
    language = pick("language", ACH_LANGUAGES if method == ACH else LANGUAGES, "en-us")
    cards = tuple(attrs.get("validCardTypes", "visa mastercard amex").lower().split())
    if not cards or set(cards) - set(CARD_TYPES):
        raise InvalidAttribute(f"validCardTypes={attrs.get('validCardTypes')!r} (one or more "
                               f"of {', '.join(CARD_TYPES)})")
    postal = attrs.get("postalCode", "true").strip()
    return PayVerb(
        payment_method=method,
        bank_account_type=pick("bankAccountType", ACCOUNT_TYPES, "consumer-checking"),
        timeout=_whole(attrs, "timeout", 5, 1, None),
        max_attempts=_whole(attrs, "maxAttempts", 1, 1, 3),
        security_code=_flag(attrs, "securityCode", True),
        postal_code={"true": True, "false": False}.get(postal.lower(), postal),
        min_postal_code_length=_whole(attrs, "minPostalCodeLength", None, 1, None),
        payment_connector=attrs.get("paymentConnector", "Default").strip() or "Default",
        token_type=pick("tokenType", TOKEN_TYPES, "reusable"),
        charge_amount=_amount(attrs.get("chargeAmount")),
        currency=_currency(attrs.get("currency", "usd")),
        description=attrs.get("description"),
        valid_card_types=cards, language=language,
        action=attrs.get("action"), status_callback=attrs.get("statusCallback"),
        parameters=parameters)


def _whole(attrs: dict[str, str], name: str, default: int | None, low: int,
           high: int | None) -> int | None:
    if name not in attrs:
        return default
    text = attrs[name].strip()
    if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
        span = f"{low} to {high}" if high is not None else f"{low} or more"
        raise InvalidAttribute(f"{name}={attrs[name]!r} (a whole number, {span})")
    return int(text)


def _flag(attrs: dict[str, str], name: str, default: bool) -> bool:
    value = attrs.get(name, str(default)).strip().lower()
    if value not in ("true", "false"):
        raise InvalidAttribute(f"{name}={attrs[name]!r} (true or false)")
    return value == "true"


def _amount(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or not 0 <= amount <= MAX_CHARGE:
        raise InvalidAttribute(f"chargeAmount={text!r} (not a number between 0.00 - "
                               "1,000,000.00)")
    return amount


def _currency(text: str) -> str:
    value = text.strip().lower()
    if not (value.isalpha() and len(value) == 3):
        raise InvalidAttribute(f"currency={text!r} (a three-letter currency code)")
    return value


# -- what each step accepts ---------------------------------------------------------------------

def check_entry(step: str, entry: str, verb: PayVerb, card_type: str | None,
                today: date) -> str | None:
    """The error type of an entry at `step`, or None when it is accepted."""
    if step == "payment-card-number":
        if not entry.isdigit() or not 12 <= len(entry) <= 19 or not luhn_valid(entry):
            return "invalid-card-number"
        return None if accepted_type(entry, verb) else "invalid-card-type"
    if step == "expiration-date":
        return None if _valid_expiry(entry, today) else "invalid-date"
    if step == "security-code":
        return None if entry.isdigit() and len(entry) == (4 if card_type == "amex" else 3) \
            else "invalid-security-code"
    if step == "postal-code":
        shortest = verb.min_postal_code_length or 1
        return None if entry.isdigit() and len(entry) >= shortest else "invalid-postal-code"
    if step == "bank-routing-number":
        return None if aba_routing_valid(entry) else "invalid-bank-routing-number"
    if step == "bank-account-number":
        return None if entry.isdigit() and \
            MIN_ACCOUNT_DIGITS <= len(entry) <= MAX_ACCOUNT_DIGITS \
            else "invalid-bank-account-number"
    raise ValueError(f"no such step {step}")


def accepted_type(number: str, verb: PayVerb) -> str | None:
    """The first of the `<Pay>`'s validCardTypes whose length and prefix rules the number
    meets, or None."""
    matched = card_types(number)
    return next((kind for kind in verb.valid_card_types if kind in matched), None)


def _valid_expiry(entry: str, today: date) -> bool:
    if len(entry) != 4 or not entry.isdigit():
        return False
    month, year = int(entry[:2]), 2000 + int(entry[2:])
    return 1 <= month <= 12 and (year, month) >= (today.year, today.month)
