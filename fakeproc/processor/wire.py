"""The Generic Pay Connector wire format: parse a request into a typed value, build answers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import cards

METHODS = ("charge", "tokenize")
CARD = "credit-card"
ACH = "ach-debit"
MAX_AMOUNT = Decimal(1_000_000)
MAX_ID_LENGTH = 255
MAX_DEPTH = 32

# Characters no database column can hold: lone surrogates, and NUL (PostgreSQL refuses it).
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")
# Longest value of each field stored as it came (the columns' sizes).
MAX_LENGTHS = {"routingnumber": 32, "currency_code": 16, "postal_code": 32}
_AMOUNT = re.compile(r"[0-9]{1,7}(\.[0-9]{1,3})?")
_STRING_FIELDS = (
    "method", "transaction_id", "cardnumber", "cvv", "expiry_month", "expiry_year", "amount",
    "currency_code", "bankaccountnumber", "routingnumber", "postal_code",
)


class InvalidRequest(Exception):
    """A body that is not a processor request at all; answered with 400."""

    status = 400

    def __init__(self, message: str, method: str | None = None):
        super().__init__(message)
        self.message = message
        self.method = method


@dataclass(frozen=True)
class PaymentRequest:
    """One processor request, validated; card data still in the clear (never store this)."""

    method: str
    transaction_id: str
    payment_method: str
    number: str
    cvv: str | None = None
    expiry_month: str | None = None
    expiry_year: str | None = None
    routing_number: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    postal_code: str | None = None
    description: Any = None
    parameters: dict[str, Any] = field(default_factory=dict)
    masked: dict[str, Any] = field(default_factory=dict)

    @property
    def is_card(self) -> bool:
        return self.payment_method == CARD

    @property
    def last4(self) -> str:
        """Last four digits of a card, last two of a bank account (what <Pay> reveals)."""
        return cards.last_digits(self.number, 4 if self.is_card else 2)

    @property
    def brand(self) -> str | None:
        return cards.card_brand(self.number) if self.is_card else None


def id_key(method: str | None) -> str:
    return "token_id" if method == "tokenize" else "charge_id"


def answer(method: str, result_id: str | None, error_code: str | None = None,
           error_message: str | None = None, parameters: dict | None = None) -> dict[str, Any]:
    """A processor answer body; the id key is always present, `null` on errors."""
    body: dict[str, Any] = {id_key(method): result_id, "error_code": error_code,
                            "error_message": error_message}
    if parameters:
        body["parameters"] = parameters
    return body


def invalid_request_body(error: InvalidRequest) -> dict[str, Any]:
    return answer(error.method or "charge", None, "invalid_request", error.message)


def parse(raw: bytes, path_method: str | None = None) -> PaymentRequest:
    """Validate a request body whatever its Content-Type; InvalidRequest when it is not one."""
    body = _load_json(raw, path_method)
    method = _method(body, path_method)
    for name in _STRING_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise InvalidRequest(f"{name} must be a string", method)
        if name in MAX_LENGTHS and len(body.get(name) or "") > MAX_LENGTHS[name]:
            raise InvalidRequest(f"{name} is longer than {MAX_LENGTHS[name]} characters", method)
    transaction_id = body.get("transaction_id")
    if not transaction_id:
        raise InvalidRequest("transaction_id is required", method)
    if len(transaction_id) > MAX_ID_LENGTH:
        raise InvalidRequest(f"transaction_id is longer than {MAX_ID_LENGTH} characters", method)
    parameters = body.get("parameters")
    if parameters is None:
        parameters = {}
    elif not isinstance(parameters, dict) or any(isinstance(v, (dict, list))
                                                 for v in parameters.values()):
        raise InvalidRequest("parameters must be a flat object", method)
    return PaymentRequest(
        method=method,
        transaction_id=transaction_id,
        **_instrument(body, method),
        amount=_amount(body.get("amount"), method),
        currency=body.get("currency_code"),
        postal_code=body.get("postal_code"),
        description=body.get("description"),
        parameters=parameters,
        masked=_masked(body),
    )


def _load_json(raw: bytes, path_method: str | None) -> dict[str, Any]:
    if not raw.strip():
        raise InvalidRequest("the body is empty; a JSON object is expected", path_method)
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidRequest("the body is not valid JSON", path_method) from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", path_method)
    for item, depth in _walk(body):
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"the body is nested more than {MAX_DEPTH} levels deep",
                                 path_method)
        if isinstance(item, str) and _UNSTORABLE.search(item):
            raise InvalidRequest("the body holds a NUL character or a \\u escape that is not "
                                 "a Unicode character (a lone surrogate)", path_method)
    return body


def _walk(value: Any):
    """Every value and key inside `value`, with its depth; iterative, so any depth is safe."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        yield item, depth
        if isinstance(item, dict):
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _method(body: dict[str, Any], path_method: str | None) -> str:
    method = body.get("method")
    if method is None and path_method:
        return path_method
    if method is None:
        raise InvalidRequest("method is required (charge or tokenize)")
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidRequest("method must be charge or tokenize", path_method)
    if path_method and method != path_method:
        raise InvalidRequest(f"method {method} contradicts the /{path_method} path", path_method)
    return method


def _instrument(body: dict[str, Any], method: str) -> dict[str, Any]:
    card, account = body.get("cardnumber"), body.get("bankaccountnumber")
    if card and account:
        raise InvalidRequest("send either card fields or bank fields, not both", method)
    if card:
        for name in ("expiry_month", "expiry_year"):
            if not body.get(name):
                raise InvalidRequest(f"{name} is required with cardnumber", method)
        return {"payment_method": CARD, "number": card, "cvv": body.get("cvv") or None,
                "expiry_month": body["expiry_month"], "expiry_year": body["expiry_year"]}
    if account:
        if not body.get("routingnumber"):
            raise InvalidRequest("routingnumber is required with bankaccountnumber", method)
        return {"payment_method": ACH, "number": account, "routing_number": body["routingnumber"]}
    raise InvalidRequest("neither card fields (cardnumber) nor bank fields "
                         "(bankaccountnumber, routingnumber) were sent", method)


def _amount(value: str | None, method: str) -> Decimal | None:
    if value is None:
        if method == "charge":
            raise InvalidRequest("amount is required for a charge", method)
        return None
    if not _AMOUNT.fullmatch(value) or Decimal(value) > MAX_AMOUNT:
        raise InvalidRequest("amount must be a decimal from 0 to 1000000 "
                             "with at most 3 decimal places", method)
    return Decimal(value)


def _masked(body: dict[str, Any]) -> dict[str, Any]:
    """The body as it may be stored: card, CVV and account masked, and in every other field
    what looks like one, or repeats the request's own (`cards.redact_numbers`)."""
    secrets = tuple(value for key in ("cardnumber", "cvv", "bankaccountnumber")
                    if isinstance(value := body.get(key), str))
    # The protocol's own fields keep their digits (a routing number, an amount equal to the
    # CVV); only a card-like run is masked there. Everything else is free text.
    masked = {key: cards.redact_pans(value) if key in _STRING_FIELDS and isinstance(value, str)
              else _redact(value, secrets) for key, value in body.items()}
    if isinstance(body.get("cardnumber"), str):
        masked["cardnumber"] = cards.mask(body["cardnumber"], 4)
    if isinstance(body.get("cvv"), str):
        masked["cvv"] = "*" * len(body["cvv"])
    if isinstance(body.get("bankaccountnumber"), str):
        masked["bankaccountnumber"] = cards.mask(body["bankaccountnumber"], 2)
    return masked


def _redact(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return _free_text(value, secrets)
    if isinstance(value, dict):
        return {_free_text(str(k), secrets): _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    return value


def _free_text(text: str, secrets: tuple[str, ...]) -> str:
    # Card-like runs even where glued to letters (the older rule), then what stands alone.
    return cards.redact_numbers(cards.redact_pans(text), secrets)
