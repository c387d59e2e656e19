"""Property tests of rules through the control API (SPEC §3, §5): whatever JSON-ish body arrives at
`POST /api/rules` or `PATCH /api/rules/<id>`, the answer is a 201/200 with a rule, or a 400 whose
message names a field of the body; never a 500, nothing logged at ERROR. A rule that was stored
then fires, without error, on a charge made to match it; and every stored rule reads back through
`GET /api/rules` as a valid action the rule book can load. On SQLite, and on PostgreSQL, which
refuses what SQLite forgives (NUL characters, integers past 32 bits).

test_rules_api.py holds the named cases; this module throws everything else at the same calls.
"""

from __future__ import annotations

import json
import logging
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fakeproc.control.schemas import RuleUpdate
from fakeproc.processor import cards

# Held faults last (configured seconds) x this: a 3600 s hang holds 36 ms.
SCALE = 1e-5
BRAND_CARDS = {brand: number for number, brand in cards.TEST_CARDS.items()} | {
    "enroute": "201400000000009"}
OUTCOMES = ("approve", "decline")

SQLITE = settings(max_examples=150, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture,
                                         HealthCheck.too_slow, HealthCheck.filter_too_much])
POSTGRES = settings(SQLITE, max_examples=40)


# -- strategies ---------------------------------------------------------------------------------

# What a valid rule may hold: no NUL, no lone surrogate.
CHARACTERS = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
TEXT = st.text(CHARACTERS, max_size=12)
# Well-typed values no store can hold: text with NUL (PostgreSQL), integers past 32 bits.
UNSTORABLE_TEXT = st.sampled_from(["\x00", "a\x00b"])
HUGE = st.sampled_from([2**31, 2**63, 2**70])
# NUL, astral characters and lone surrogates: what JSON can carry.
ODD_TEXT = st.one_of(TEXT, UNSTORABLE_TEXT, st.sampled_from(["", "\udc80", "\U0001f4b3", " "]))
NUMBERS = st.one_of(st.integers(-2**70, 2**70), HUGE, st.sampled_from([2**31 - 1]),
                    st.floats(allow_nan=True, allow_infinity=True))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, ODD_TEXT)
ANY_JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(ODD_TEXT, inner, max_size=3)), max_leaves=8)

DECIMALS = st.one_of(
    st.decimals(0, 1_000_000, places=3).map(str),
    st.decimals(0, 1_000_000, places=2).map(float),
    st.integers(0, 1_000_000),
    st.sampled_from(["0", "1000000", "10.00", "10.0", "0010.5", "4100.00", "2001.00"]),
)
SECONDS = st.one_of(st.floats(0.001, 3600), st.integers(1, 3600))
VARIANTS = ["not_json", "html", "empty", "missing_id", "null_id_no_error", "wrong_id_key",
            "truncated"]


def _in_order(match: dict[str, Any]) -> bool:
    low, high = match.get("amount_min"), match.get("amount_max")
    return low is None or high is None or Decimal(str(low)) <= Decimal(str(high))


def well_typed_rules(text: st.SearchStrategy[str], count: st.SearchStrategy[int]
                     ) -> st.SearchStrategy[dict[str, Any]]:
    """Rule bodies with every field of the right JSON type and shape; `text` and `count` fill
    the free text fields and `remaining`."""
    def some_text(min_size: int = 0) -> st.SearchStrategy[str]:
        return st.one_of(st.text(CHARACTERS, min_size=min_size, max_size=12), text)

    parameters = st.dictionaries(some_text(1), some_text(), max_size=3)
    match = st.fixed_dictionaries({}, optional={
        "connector": st.one_of(st.sampled_from(["Default", "Shop", "Nobody"]), text),
        "method": st.sampled_from(["charge", "tokenize"]),
        "payment_method": st.sampled_from(["credit-card", "ach-debit"]),
        "card_number": st.one_of(st.sampled_from(sorted(cards.TEST_CARDS)),
                                 st.text("0123456789", min_size=8, max_size=19)),
        "card_brand": st.sampled_from(cards.BRANDS),
        "last4": st.text("0123456789", min_size=2, max_size=4),
        "amount": DECIMALS, "amount_min": DECIMALS, "amount_max": DECIMALS,
        "currency": st.one_of(st.sampled_from(["USD", "usd", "EUR"]), text),
        "postal_code": st.one_of(st.sampled_from(["94111", "00000", "SW1A 1AA"]), text),
        "cvv": st.text("0123456789", min_size=3, max_size=4),
        "description_contains": some_text(1),
        "parameters": parameters,
        "transaction_id": some_text(1),
        "attempt": st.integers(1, 3),
    }).filter(_in_order)
    outcome = st.one_of(
        st.just({"type": "approve"}),
        st.fixed_dictionaries({"type": st.just("decline"), "error_code": st.from_regex(
            r"[a-z0-9_]{1,20}", fullmatch=True)}, optional={"error_message": some_text()}))
    extras = {"outcome": outcome, "parameters": parameters}
    action = st.one_of(
        outcome,
        st.fixed_dictionaries({"type": st.just("delay"), "seconds": SECONDS}, optional=extras),
        st.fixed_dictionaries({"type": st.just("hang")}, optional={
            "seconds": SECONDS, "charge": st.booleans(), **extras}),
        st.fixed_dictionaries({"type": st.just("drop")}, optional={
            "charge": st.booleans(), **extras}),
        st.fixed_dictionaries({"type": st.just("http_error"), "status": st.integers(400, 599)},
                              optional={"body": some_text(), "charge": st.booleans(), **extras}),
        st.fixed_dictionaries({"type": st.just("malformed"), "variant": st.sampled_from(
            VARIANTS)}, optional={"status": st.integers(100, 599), "charge": st.booleans(),
                                  **extras}),
    )
    lifetime = {"remaining": st.one_of(st.none(), count),
                "probability": st.sampled_from([0.0, 0.5, 1.0]), "enabled": st.booleans(),
                "priority": st.integers(-1_000_000, 1_000_000),
                "note": st.one_of(st.none(), some_text())}
    return st.fixed_dictionaries({"action": action}, optional={"match": match, **lifetime})


VALID_RULE = well_typed_rules(st.nothing(), st.integers(1, 5))
UNSTORABLE_RULE = well_typed_rules(UNSTORABLE_TEXT, st.one_of(st.integers(1, 5), HUGE))
RULE_KEYS = ["match", "action", "remaining", "probability", "enabled", "priority", "note"]


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A valid body with a few values, at any depth, replaced by any JSON, dropped, or added."""
    body = json.loads(json.dumps(draw(base)))
    for _ in range(draw(st.integers(1, 3))):
        target = body
        while True:  # walk down into a nested object now and then
            nested = [k for k, v in target.items() if isinstance(v, dict)]
            if not nested or not draw(st.booleans()):
                break
            target = target[draw(st.sampled_from(sorted(nested)))]
        names = sorted(target) + ["type", "seconds", "status", "extra"]
        name = draw(st.sampled_from(names))
        if name in target and draw(st.booleans()):
            del target[name]
        else:
            target[name] = draw(ANY_JSON)
    return body


ANY_OBJECT = st.dictionaries(st.one_of(st.sampled_from(RULE_KEYS), ODD_TEXT), ANY_JSON,
                             max_size=5)
RULE_BODIES = st.one_of(VALID_RULE, UNSTORABLE_RULE, mutated(VALID_RULE), mutated(VALID_RULE),
                        ANY_OBJECT)
# A PATCH takes any subset of a rule's fields, null for "leave it", 0 for `remaining`.
PATCH_BODIES = st.one_of(
    st.one_of(VALID_RULE, UNSTORABLE_RULE).flatmap(lambda rule: st.fixed_dictionaries(
        {}, optional={name: st.sampled_from([value, None]) for name, value in rule.items()})),
    st.fixed_dictionaries({"remaining": st.just(0)}),
    mutated(VALID_RULE), ANY_OBJECT)


# -- a charge that a rule's match selects ----------------------------------------------------

def _amount_text(value: Any) -> str:
    return f"{Decimal(str(value)):f}"


def _pick_amount(match: dict[str, Any]) -> str | None:
    """An amount the match accepts, as the wire takes it; None if none can be found."""
    if "amount" in match:
        amount = Decimal(str(match["amount"]))
    else:
        amount = Decimal(str(match.get("amount_min", match.get("amount_max", "10.00"))))
    low, high = (Decimal(str(match[k])) if k in match else None for k in ("amount_min",
                                                                         "amount_max"))
    if (low is not None and amount < low) or (high is not None and amount > high):
        return None
    return _amount_text(amount)


def _card_for(match: dict[str, Any]) -> str | None:
    number = match.get("card_number")
    last4 = match.get("last4")
    if number is None:
        number = BRAND_CARDS.get(match.get("card_brand", "visa"))
        if number and last4 is not None:
            number = number[:-len(last4)] + last4
    if number is None or match.get("card_brand", cards.card_brand(number)) != \
            cards.card_brand(number):
        return None
    if last4 is not None and cards.last_digits(number, 4) != last4:
        return None
    return number


def matching_charge(client, match: dict[str, Any]) -> tuple[str, dict[str, Any], int] | None:
    """(path, body, attempts to send) whose last attempt the match selects; None when no
    request can match it (a tokenize with an amount, a 3-digit last4, a bad connector name)."""
    method = match.get("method", "charge")
    card_fields = {"card_number", "card_brand", "cvv"} & set(match) or (
        "last4" in match and len(match["last4"]) == 4)
    ach = match.get("payment_method") == "ach-debit" or (
        "payment_method" not in match and not card_fields and len(match.get("last4", "xx")) == 2)
    body: dict[str, Any] = {"method": method, "transaction_id": match.get(
        "transaction_id", f"fz-{uuid.uuid4().hex[:12]}"), "currency_code": match.get(
        "currency", "USD"), "postal_code": match.get("postal_code", "94111"),
        "description": match.get("description_contains", "pizza"),
        "parameters": match.get("parameters", {})}
    if "fakeproc_scenario" in body["parameters"]:
        return None  # the scenario's own steps come first, and an unknown one is a 400
    if ach:
        if card_fields or len(match.get("last4", "89")) != 2:
            return None
        body |= {"bankaccountnumber": "1234567" + match.get("last4", "89"),
                 "routingnumber": "121000358"}
    else:
        number = _card_for(match)
        if number is None:
            return None
        body |= {"cardnumber": number, "cvv": match.get("cvv", "1234"), "expiry_month": "08",
                 "expiry_year": "2035"}
    amounts = {"amount", "amount_min", "amount_max"} & set(match)
    if method == "tokenize" and amounts:
        return None
    if method == "charge":
        body["amount"] = _pick_amount(match)
        if body["amount"] is None:
            return None
    path = "/"
    connector = match.get("connector", "Default")
    if connector != "Default":
        created = client.post("/api/connectors", json={"unique_name": connector})
        if created.status_code not in (201, 409):
            return None
        path = f"/connectors/{quote(connector, safe='')}/"
    return path, body, match.get("attempt", 1)


# -- the properties -----------------------------------------------------------------------------

def names_a_field(error: str, body: dict[str, Any]) -> bool:
    """A validation message starts with the path of what is wrong: a key of the body, or
    `action`, the one field a rule cannot do without; or `body` when a key itself is not text
    (a lone surrogate), so that no field can be named."""
    names = [key or '""' for key in body] + ["action"] + (
        ["body"] if any(_unreadable(key) for key in body) else [])
    return any(error.startswith((f"{name}: ", f"{name}.")) for name in names)


def _unreadable(text: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in text)


def errors_logged(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name.startswith("fakeproc") and record.levelno >= logging.ERROR]


def fires_on_its_charge(client, rule: dict[str, Any], match: dict[str, Any]) -> None:
    """Send the charge the rule's (clear) match selects; the rule book loads and evaluates every
    stored rule, and this one fires when it should."""
    plan = matching_charge(client, match)
    if plan is None:
        event("no charge can match")
        path, body, attempts = "/", {**_plain_charge(), "transaction_id": "fz-plain"}, 1
    else:
        path, body, attempts = plan
    for _ in range(attempts):
        response = client.post(path, json=body)
        assert response.status_code != 500 or rule["action"].get("status") == 500, \
            response.get_data()[:300]
    connector = path.split("/")[2] if path != "/" else "Default"
    detail = client.get(f"/api/transactions/{quote(body['transaction_id'], safe='')}",
                        query_string={"connector": connector})
    assert detail.status_code == 200, detail.json
    fired = f"rule:{rule['id']}" in detail.json["attempts"][-1]["rules"]
    replayed_outcome = rule["action"]["type"] in OUTCOMES and attempts > 1
    # Rules and magic values each fill their own part (README): the magic 4100.00 hang
    # charges nothing, so nothing is decided and an outcome rule has nothing to decide.
    nothing_decided = rule["action"]["type"] in OUTCOMES and body.get("amount") == "4100.00"
    should_fire = plan is not None and rule["live"] and rule["probability"] >= 1 \
        and not replayed_outcome and not nothing_decided
    if should_fire:
        assert fired, (rule, body, detail.json["attempts"])
    event("fired" if fired else "did not fire")


def _plain_charge() -> dict[str, Any]:
    return {"method": "charge", "cardnumber": "4111111111111111", "cvv": "123",
            "expiry_month": "08", "expiry_year": "2035", "amount": "10.00",
            "currency_code": "USD"}


def every_stored_rule_loads(client) -> None:
    """Read back every rule: each is listed, and its action is one the API would take again."""
    listed = client.get("/api/rules?limit=500")
    assert listed.status_code == 200, listed.json
    for rule in listed.json["data"]:
        assert RuleUpdate.model_validate({"action": rule["action"]}).action is not None, rule
        assert isinstance(rule["match"], dict) and rule["id"] >= 1
    client.post("/", json={**_plain_charge(), "transaction_id": "fz-after"})  # any rule applies
    assert client.get("/api/transactions/fz-after").status_code == 200


def check_create(client, caplog, body: Any) -> None:
    caplog.clear()
    assert client.post("/api/reset", json={"rules": True}).status_code == 200
    response = client.post("/api/rules", data=json.dumps(body), content_type="application/json")
    assert response.status_code in (201, 400), (response.status_code, response.get_data())
    if response.status_code == 400:
        event("400")
        assert set(response.json) == {"error"}
        assert names_a_field(response.json["error"], body), (response.json, body)
        assert client.get("/api/rules").json["data"] == []
    else:
        event("201")
        fires_on_its_charge(client, response.json, body.get("match") or {})
    every_stored_rule_loads(client)
    assert errors_logged(caplog) == []


def check_update(client, caplog, base: dict[str, Any], update: Any) -> None:
    caplog.clear()
    assert client.post("/api/reset", json={"rules": True}).status_code == 200
    created = client.post("/api/rules", json=base)
    assert created.status_code == 201, created.json
    rule_id = created.json["id"]
    response = client.patch(f"/api/rules/{rule_id}", data=json.dumps(update),
                            content_type="application/json")
    assert response.status_code in (200, 400), (response.status_code, response.get_data())
    stored = client.get(f"/api/rules/{rule_id}").json
    if response.status_code == 400:
        event("400")
        assert set(response.json) == {"error"}
        assert names_a_field(response.json["error"], update), (response.json, update)
        assert stored == created.json
    else:
        event("200")
        assert stored == response.json
        match = update.get("match") if update.get("match") is not None else base.get("match")
        fires_on_its_charge(client, stored, match or {})
    every_stored_rule_loads(client)
    assert errors_logged(caplog) == []


@pytest.fixture
def rules_client(make_app):
    return make_app(TIME_SCALE=SCALE).test_client()


@pytest.fixture
def postgres_rules_client(make_app, postgres_url):
    return make_app(DATABASE_URL=postgres_url, AUTO_MIGRATE=True, TIME_SCALE=SCALE).test_client()


@SQLITE
@given(body=RULE_BODIES)
def test_any_rule_body_is_stored_and_fires_or_is_a_400_naming_a_field(rules_client, caplog,
                                                                      body):
    check_create(rules_client, caplog, body)


@SQLITE
@given(base=VALID_RULE, update=PATCH_BODIES)
def test_any_rule_update_is_stored_and_fires_or_is_a_400_naming_a_field(rules_client, caplog,
                                                                        base, update):
    check_update(rules_client, caplog, base, update)


@pytest.mark.postgres
@POSTGRES
@given(body=RULE_BODIES)
def test_any_rule_body_on_postgres(postgres_rules_client, caplog, body):
    check_create(postgres_rules_client, caplog, body)


@pytest.mark.postgres
@POSTGRES
@given(base=VALID_RULE, update=PATCH_BODIES)
def test_any_rule_update_on_postgres(postgres_rules_client, caplog, base, update):
    check_update(postgres_rules_client, caplog, base, update)
