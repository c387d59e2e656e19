"""`fakeproc pay`: one payment as Twilio makes it, played as a call whose app answers a single
`<Pay>`, so that it meets the same validation, TEST mode, Result mapping and masking as any
call. The caller keys the given card or account, and keys an entry again when asked again."""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import quoteattr

from werkzeug.wrappers import Request, Response

from ..action_fields import post
from ..payment_details import BankAccount, Card
from .caller import Repeating
from .runner import place_call
from .session import CallOptions, Session
from .webhooks import WsgiApp

VOICE = "https://localhost/voice"  # the one-<Pay> app lives in this process


@dataclass
class OnePay:
    """What `fakeproc pay` was asked to pay, and how."""

    payment: Card | BankAccount
    amount: str | None  # None: tokenize
    currency: str = "USD"
    description: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    action_url: str | None = None
    auth_token: str | None = None


@dataclass
class Forwarded:
    """The payment's fields as the team's action URL got them."""

    status: int | None = None
    body: bytes = b""
    error: str | None = None


def pay_once(pay: OnePay, processor_url: str, options: CallOptions) -> tuple[Session,
                                                                           Forwarded]:
    """The call, played; and what the action URL (if any) answered."""
    forwarded = Forwarded()
    session = place_call(WsgiApp(_app(_twiml(pay), pay, forwarded)), VOICE,
                         Repeating(_entries(pay.payment)),
                         replace(options, connectors={"Default": processor_url}))
    return session, forwarded


def _twiml(pay: OnePay) -> str:
    attributes: dict[str, str] = {"action": "/action", "currency": pay.currency.lower()}
    if pay.amount is not None:
        attributes["chargeAmount"] = pay.amount
    if pay.description is not None:
        attributes["description"] = pay.description
    if isinstance(pay.payment, BankAccount):
        attributes.update(paymentMethod="ach-debit", bankAccountType=pay.payment.account_type)
    else:
        card = pay.payment
        attributes["securityCode"] = "true" if card.cvv else "false"
        attributes["postalCode"] = "true" if card.postal_code else "false"
        attributes["validCardTypes"] = ("visa mastercard amex maestro discover optima jcb "
                                        "diners-club enroute")
    parameters = "".join(f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>"
                         for k, v in pay.parameters.items())
    shown = " ".join(f"{name}={quoteattr(value)}" for name, value in attributes.items())
    return f"<Response><Pay {shown}>{parameters}</Pay></Response>"


def _entries(payment: Card | BankAccount) -> dict[str, str]:
    if isinstance(payment, BankAccount):
        return {"bank-routing-number": payment.routing_number,
                "bank-account-number": payment.account_number}
    entries = {"payment-card-number": payment.number,
               "expiration-date": f"{int(payment.expiry_month):02d}"
                                  f"{int(payment.expiry_year) % 100:02d}"}
    if payment.cvv:
        entries["security-code"] = payment.cvv
    if payment.postal_code:
        entries["postal-code"] = payment.postal_code
    return entries


def _app(twiml: str, pay: OnePay, forwarded: Forwarded) -> Any:
    """The team's app, as far as `fakeproc pay` needs one: the `<Pay>`, and an action URL
    that hands the fields on to the real one, if given."""
    @Request.application
    def app(request: Request) -> Response:
        if request.path == "/action" and pay.action_url:
            try:
                forwarded.status, forwarded.body = post(pay.action_url, request.form.to_dict(),
                                                        pay.auth_token)
            except (OSError, http.client.HTTPException, ValueError) as error:
                forwarded.error = str(error) or type(error).__name__
        body = twiml if request.path == "/voice" else "<Response/>"
        return Response(body, content_type="text/xml")

    return app


def is_tokenize(amount: str | None) -> bool:
    """`<Pay>` tokenizes when chargeAmount is 0 or absent."""
    try:
        return amount is None or Decimal(amount) == 0
    except ArithmeticError:
        return False
