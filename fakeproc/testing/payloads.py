"""Realistic Generic Pay Connector bodies made with Faker: charges and tokenizations, card or
ACH, the TEST-mode numbers by default. One seed gives the same bodies (and ids) again."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any

from faker import Faker

from ..processor.cards import TEST_BANK_ACCOUNTS, TEST_CARDS, card_brand
from ..processor.magic_values import SCENARIO_PARAMETER

_ITEMS = ("pizza", "large coffee", "concert ticket", "bouquet of tulips", "pair of sneakers",
          "phone case", "museum pass", "bag of dog food", "yoga class", "car wash")
_PLANS = ("Basic", "Family", "Premium", "Business")


class Payloads:
    """A seedable maker of request bodies; `fresh_ids=True` draws transaction ids from the
    system's randomness even when seeded, so that a rerun adds transactions."""

    def __init__(self, seed: int | None = None, fresh_ids: bool = False):
        self.fake = Faker("en_US")
        if seed is not None:
            self.fake.seed_instance(seed)
        self.rng = self.fake.random
        self.fresh_ids = fresh_ids

    def __call__(self, method: str = "charge", *, ach: bool = False, scenario: str | None = None,
                 expired: bool = False, live: bool = False, bad_routing: bool = False,
                 **fields: Any) -> dict[str, Any]:
        """A body: card, or bank account with `ach`; `expired`, `live` (not a TEST-mode
        number) and `bad_routing` make one a processor refuses; `scenario` sets the
        fakeproc_scenario parameter. `fields` replace what was made; None removes a field."""
        instrument = {"bad_routing": bad_routing, "live_account": live} if ach \
            else {"expired": expired, "live_card": live}
        body = self.body(method, ach, **instrument)
        body.update(fields)
        if scenario:
            body["parameters"] = {**(body.get("parameters") or {}), SCENARIO_PARAMETER: scenario}
        return {key: value for key, value in body.items() if value is not None}

    def transaction_id(self) -> str:
        """Twilio-shaped: PK and 32 hex digits."""
        return "PK" + (secrets.token_hex(16) if self.fresh_ids else self.fake.hexify("^" * 32))

    def body(self, method: str = "charge", ach: bool = False, amount: str | None = None,
              scenario: str | None = None, postal_code: str | None = None,
              **instrument: Any) -> dict[str, Any]:
        """A body from the options the demo's stories vary (see `_card` and `_account`)."""
        body: dict[str, Any] = {"method": method, "transaction_id": self.transaction_id()}
        body.update(self._account(**instrument) if ach else self._card(**instrument))
        if method == "charge":
            body.update(amount=amount or self._amount(), currency_code="USD")
        body["description"] = self._description()
        if not ach:
            postcode = self.fake.postcode()  # 00000 is the incorrect_zip magic value
            body["postal_code"] = postal_code or ("10001" if postcode == "00000" else postcode)
        body["parameters"] = self._parameters()
        if scenario:
            body["parameters"][SCENARIO_PARAMETER] = scenario
        return body

    def _card(self, cvv: str | None = None, expired: bool = False,
              live_card: bool = False) -> dict[str, str]:
        r = self.rng
        number = self.fake.credit_card_number(r.choice(("visa16", "mastercard", "amex"))) \
            if live_card else r.choice(sorted(TEST_CARDS))
        digits = 4 if card_brand(number) == "amex" else 3
        year = date.today().year + (-1 if expired else r.randint(1, 6))
        return {"cardnumber": number, "cvv": cvv or f"{r.randint(1, 10**digits - 1):0{digits}d}",
                "expiry_month": f"{r.randint(1, 12):02d}",
                "expiry_year": r.choice((str(year), f"{year % 100:02d}"))}

    def _account(self, bad_routing: bool = False, live_account: bool = False) -> dict[str, str]:
        routing = self.fake.aba()
        if bad_routing:  # one digit off: the ABA checksum fails
            routing = routing[:8] + str((int(routing[8]) + 1) % 10)
        account = self.fake.numerify("##########") if live_account \
            else self.rng.choice(sorted(TEST_BANK_ACCOUNTS))
        return {"bankaccountnumber": account, "routingnumber": routing}

    def _amount(self) -> str:
        # Most phone payments are small, a few large; all below the magic ranges (2000 and up).
        cents = int(self.rng.lognormvariate(8.3, 1.0))
        return f"{min(max(cents, 100), 199_999) / 100:.2f}"

    def _description(self) -> str:
        r, fake, roll = self.rng, self.fake, self.rng.random()
        if roll < 0.6:
            order = fake.random_int(10000, 99999)
            return f"Order #{order} – {r.randint(1, 4)} x {r.choice(_ITEMS)}"
        if roll < 0.85:
            return f"Invoice {fake.bothify('INV-####-??').upper()} – {fake.company()}"
        return f"{r.choice(_PLANS)} plan renewal – {fake.name()}"

    def _parameters(self) -> dict[str, str]:
        r, fake = self.rng, self.fake
        parameters = {"order_ref": fake.bothify("ord_########"),
                      "channel": r.choice(("ivr", "ivr", "agent", "callback"))}
        if r.random() < 0.6:
            parameters["customer_name"] = fake.name()
        if r.random() < 0.4:
            parameters["store"] = f"{fake.city()} store"
        return parameters


