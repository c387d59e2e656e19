"""What the caller keyed in, as Twilio's side holds it: a card or a bank account, the body's
transaction id, and the request as it may be shown (numbers and CVV masked)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from ..processor import mask, redact_pans


@dataclass(frozen=True)
class Card:
    """A card as the caller keyed it in. Years may be given as 30 or 2030."""

    number: str
    expiry_month: str | int
    expiry_year: str | int
    cvv: str | None = None
    postal_code: str | None = None

    def request_fields(self) -> dict[str, Any]:
        return {"cardnumber": str(self.number), "cvv": self.cvv,
                "expiry_month": f"{int(self.expiry_month):02d}",
                "expiry_year": f"{int(self.expiry_year) % 100:02d}",
                "postal_code": self.postal_code}


@dataclass(frozen=True)
class BankAccount:
    """An ACH debit; `account_type` is <Pay>'s bankAccountType (not sent to the processor)."""

    account_number: str
    routing_number: str
    account_type: str = "consumer-checking"

    def request_fields(self) -> dict[str, Any]:
        return {"bankaccountnumber": str(self.account_number),
                "routingnumber": str(self.routing_number)}


def new_transaction_id() -> str:
    """A transaction id shaped like Twilio's Payment SIDs: PK and 32 hex digits."""
    return "PK" + secrets.token_hex(16)


def masked(body: dict[str, Any]) -> dict[str, Any]:
    """The body with the card or account number, and the CVV, masked; digit runs that look
    like card numbers masked in the description and parameters."""
    copy = dict(body)
    for key, visible in (("cardnumber", 4), ("bankaccountnumber", 2)):
        if copy.get(key) is not None:
            copy[key] = mask(str(copy[key]), visible)
    if copy.get("cvv"):
        copy["cvv"] = "*" * len(str(copy["cvv"]))
    for key in ("description", "parameters"):
        if copy.get(key) is not None:
            copy[key] = json.loads(redact_pans(json.dumps(copy[key])))
    return copy
