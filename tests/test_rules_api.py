"""SPEC §3 rules through the control API of §5: create, list, read, change, delete; validation
that names the wrong field and stores nothing; card data in a match never kept in the clear;
every match field; `remaining`, `probability`, `enabled`, `priority`; reset; many rules."""

from __future__ import annotations

import re
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_SCALE, ach_payload, card_payload, post_concurrently

RULE_KEYS = {"id", "match", "action", "remaining", "probability", "enabled", "priority", "note",
             "fired", "live", "created_at", "updated_at"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
MATCHED = {"type": "decline", "error_code": "rule_matched"}
LIVE_VISA = "4242424242424242"


# -- helpers ---------------------------------------------------------------------------------

def create(client, status: int = 201, **body: Any) -> dict[str, Any]:
    response = client.post("/api/rules", json=body)
    assert response.status_code == status, response.get_data()
    return response.json


def rule_ids(client) -> list[int]:
    """Every stored rule id, walking all pages."""
    ids, cursor = [], None
    while True:
        params = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/rules", query_string=params)
        assert page.status_code == 200, page.json
        ids += [rule["id"] for rule in page.json["data"]]
        cursor = page.json["next_cursor"]
        if cursor is None:
            return ids


def get(client, rule_id: int) -> dict[str, Any]:
    response = client.get(f"/api/rules/{rule_id}")
    assert response.status_code == 200, response.get_data()
    return response.json


def patch(client, rule_id: int, **body: Any) -> dict[str, Any]:
    response = client.patch(f"/api/rules/{rule_id}", json=body)
    assert response.status_code == 200, response.get_data()
    return response.json


def charge(client, path: str = "/", **overrides: Any):
    body = card_payload(**overrides)
    return client.post(path, json=body), body


def code_of(response) -> str | None:
    assert response.status_code == 200, (response.status_code, response.get_data())
    return response.json["error_code"]


# -- CRUD ------------------------------------------------------------------------------------

def test_create_answers_201_with_the_stored_rule(client):
    rule = create(client, match={"amount": "10.00", "currency": "USD"},
                  action={"type": "decline", "error_code": "do_not_honor",
                          "error_message": "Nope.", "parameters": {"reason": "qa"}},
                  remaining=3, probability=0.5, priority=7, note="first")
    assert set(rule) == RULE_KEYS
    assert isinstance(rule["id"], int)
    assert rule | {"id": 0, "created_at": "", "updated_at": ""} == {
        "id": 0, "match": {"amount": "10.00", "currency": "USD"},
        "action": {"type": "decline", "error_code": "do_not_honor", "error_message": "Nope.",
                   "parameters": {"reason": "qa"}},
        "remaining": 3, "probability": 0.5, "enabled": True, "priority": 7, "note": "first",
        "fired": 0, "live": True, "created_at": "", "updated_at": ""}
    assert TIMESTAMP.match(rule["created_at"]) and rule["updated_at"] == rule["created_at"]
    assert get(client, rule["id"]) == rule


@pytest.mark.parametrize("action,stored", [
    ({"type": "approve"}, {"type": "approve"}),
    ({"type": "delay", "seconds": 12}, {"type": "delay", "seconds": 12.0}),
    ({"type": "delay", "seconds": 12, "outcome": {"type": "decline", "error_code": "x"}},
     {"type": "delay", "seconds": 12.0, "outcome": {"type": "decline", "error_code": "x"}}),
    ({"type": "hang"}, {"type": "hang", "seconds": 65.0, "charge": False}),
    ({"type": "hang", "seconds": 30, "charge": True},
     {"type": "hang", "seconds": 30.0, "charge": True}),
    ({"type": "drop"}, {"type": "drop", "charge": True}),
    ({"type": "http_error", "status": 503, "body": "busy"},
     {"type": "http_error", "status": 503, "body": "busy", "charge": False}),
    ({"type": "malformed", "variant": "html", "status": 500},
     {"type": "malformed", "variant": "html", "status": 500, "charge": True}),
], ids=lambda value: value["type"] if isinstance(value, dict) else None)
def test_actions_are_stored_with_their_defaults(client, action, stored):
    rule = create(client, action=action)
    assert rule["action"] == stored and rule["match"] == {}
    assert (rule["remaining"], rule["probability"], rule["enabled"], rule["priority"]) == (
        None, 1.0, True, 100)


def test_list_pages_newest_first_with_limit_and_cursor(client):
    created = [create(client, action={"type": "approve"}, note=str(i))["id"] for i in range(5)]
    first = client.get("/api/rules?limit=2").json
    assert set(first) == {"data", "next_cursor"}
    assert [rule["id"] for rule in first["data"]] == created[::-1][:2]
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/rules", query_string=params).json
        assert len(page["data"]) <= 2
        seen += [rule["id"] for rule in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == created[::-1]
    everything = client.get("/api/rules").json
    assert everything["next_cursor"] is None and len(everything["data"]) == 5
    assert everything["data"][0] == get(client, created[-1])


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=abc", "limit=-1",
                                   "cursor=bogus", "cursor=c"])
def test_bad_paging_is_400(client, query):
    response = client.get(f"/api/rules?{query}")
    assert response.status_code == 400 and set(response.json) == {"error"}


def test_patch_changes_only_what_it_names(client):
    rule = create(client, match={"amount": "10.00"}, action=MATCHED, note="keep", priority=5)
    time.sleep(0.002)
    changed = patch(client, rule["id"], enabled=False)
    assert changed | {"updated_at": None} == rule | {"enabled": False, "live": False,
                                                      "updated_at": None}
    assert changed["updated_at"] > rule["updated_at"]
    assert changed["created_at"] == rule["created_at"]
    assert get(client, rule["id"]) == changed


def test_patch_enable_disable_remaining_priority_match_action(client):
    rule_id = create(client, match={"amount": "10.00"}, action=MATCHED)["id"]
    assert code_of(charge(client)[0]) == "rule_matched"

    patch(client, rule_id, enabled=False)
    assert code_of(charge(client)[0]) is None
    patch(client, rule_id, enabled=True)
    assert code_of(charge(client)[0]) == "rule_matched"

    assert patch(client, rule_id, remaining=1)["live"] is True
    assert code_of(charge(client)[0]) == "rule_matched"
    assert get(client, rule_id)["remaining"] == 0 and not get(client, rule_id)["live"]
    assert code_of(charge(client)[0]) is None
    back = patch(client, rule_id, remaining=None)  # forever again
    assert back["remaining"] is None and back["live"] is True
    assert code_of(charge(client)[0]) == "rule_matched"

    assert patch(client, rule_id, match={"amount": "11.00"})["match"] == {"amount": "11.00"}
    assert code_of(charge(client)[0]) is None
    assert code_of(charge(client, amount="11.00")[0]) == "rule_matched"

    patched = patch(client, rule_id, action={"type": "decline", "error_code": "lost_card"})
    assert patched["action"] == {"type": "decline", "error_code": "lost_card"}
    assert code_of(charge(client, amount="11.00")[0]) == "lost_card"

    other = create(client, match={"amount": "11.00"}, action=MATCHED, priority=50)["id"]
    assert code_of(charge(client, amount="11.00")[0]) == "rule_matched"  # 50 before 100
    assert patch(client, rule_id, priority=10)["priority"] == 10
    assert code_of(charge(client, amount="11.00")[0]) == "lost_card"
    assert patch(client, other, match={})["match"] == {}  # an empty match matches anything
    assert code_of(charge(client, amount="99.00")[0]) == "rule_matched"


def test_patch_with_nulls_keeps_required_settings(client):
    rule = create(client, action={"type": "approve"}, note="n", priority=3, probability=0.25)
    changed = patch(client, rule["id"], enabled=None, priority=None, probability=None,
                    match=None, action=None, note=None)
    assert changed | {"updated_at": None} == rule | {"note": None, "updated_at": None}


def test_delete_answers_204_and_forgets_the_rule(client):
    rule_id = create(client, match={"amount": "10.00"}, action=MATCHED)["id"]
    response = client.delete(f"/api/rules/{rule_id}")
    assert response.status_code == 204 and response.get_data() == b""
    assert client.get(f"/api/rules/{rule_id}").status_code == 404
    assert rule_ids(client) == []
    assert code_of(charge(client)[0]) is None


@pytest.mark.parametrize("verb", ["get", "patch", "delete"])
@pytest.mark.parametrize("rule_id", ["999999", "abc", "-1"])
def test_unknown_rules_are_404_json(client, verb, rule_id):
    create(client, action={"type": "approve"})
    kwargs = {"json": {"enabled": False}} if verb == "patch" else {}
    response = getattr(client, verb)(f"/api/rules/{rule_id}", **kwargs)
    assert response.status_code == 404
    assert response.mimetype == "application/json" and set(response.json) == {"error"}
    if rule_id == "999999":
        assert response.json["error"] == "no rule 999999"


def test_rules_need_the_admin_token(make_app):
    client = make_app(ADMIN_TOKEN="s3cret").test_client()
    assert client.get("/api/rules").status_code == 401
    assert client.post("/api/rules", json={"action": {"type": "approve"}}).status_code == 401
    auth = {"Authorization": "Bearer s3cret"}
    created = client.post("/api/rules", json={"action": {"type": "approve"}}, headers=auth)
    assert created.status_code == 201
    for verb in ("get", "patch", "delete"):
        assert getattr(client, verb)(f"/api/rules/{created.json['id']}",
                                     json={}).status_code == 401
    assert client.get("/api/rules", headers=auth).json["data"] == [created.json]


# -- validation ------------------------------------------------------------------------------

APPROVE = {"type": "approve"}

INVALID_CREATES = [
    pytest.param({"match": {"amount": "abc"}, "action": APPROVE}, "match.amount", id="amount"),
    pytest.param({"match": {"amount": "-1"}, "action": APPROVE}, "match.amount",
                 id="amount-negative"),
    pytest.param({"match": {"amount": "1000000.01"}, "action": APPROVE}, "match.amount",
                 id="amount-too-big"),
    pytest.param({"match": {"amount": "10.0001"}, "action": APPROVE}, "match.amount",
                 id="amount-4-places"),
    pytest.param({"match": {"amount": True}, "action": APPROVE}, "match.amount",
                 id="amount-bool"),
    pytest.param({"match": {"amount_min": "x"}, "action": APPROVE}, "match.amount_min",
                 id="amount_min"),
    pytest.param({"match": {"amount_max": []}, "action": APPROVE}, "match.amount_max",
                 id="amount_max"),
    pytest.param({"match": {"amount_min": "20", "amount_max": "10"}, "action": APPROVE},
                 "amount_min", id="amount_min-above-amount_max"),
    pytest.param({"action": {"type": "explode"}}, "action.type", id="type-unknown"),
    pytest.param({"action": {}}, "action.type", id="type-missing"),
    pytest.param({"action": {"type": 7}}, "action.type", id="type-number"),
    pytest.param({"action": "approve"}, "action", id="action-string"),
    pytest.param({"match": {}}, "action", id="action-missing"),
    pytest.param({"action": {"type": "delay"}}, "action.seconds", id="seconds-missing"),
    pytest.param({"action": {"type": "delay", "seconds": 0}}, "action.seconds",
                 id="seconds-zero"),
    pytest.param({"action": {"type": "delay", "seconds": "5"}}, "action.seconds",
                 id="seconds-string"),
    pytest.param({"action": {"type": "hang", "seconds": 3601}}, "action.seconds",
                 id="hang-seconds-too-long"),
    pytest.param({"action": {"type": "malformed"}}, "action.variant", id="variant-missing"),
    pytest.param({"action": {"type": "malformed", "variant": "xml"}}, "action.variant",
                 id="variant-unknown"),
    pytest.param({"action": {"type": "http_error"}}, "action.status", id="status-missing"),
    pytest.param({"action": {"type": "http_error", "status": 200}}, "action.status",
                 id="status-200"),
    pytest.param({"action": {"type": "http_error", "status": 600}}, "action.status",
                 id="status-600"),
    pytest.param({"action": {"type": "http_error", "status": "503"}}, "action.status",
                 id="status-string"),
    pytest.param({"action": {"type": "decline"}}, "action.error_code", id="error_code-missing"),
    pytest.param({"action": {"type": "decline", "error_code": "Not Snake"}},
                 "action.error_code", id="error_code-pattern"),
    pytest.param({"action": {"type": "delay", "seconds": 1, "outcome": {"type": "hang"}}},
                 "action.outcome.type", id="outcome-not-an-outcome"),
    pytest.param({"action": APPROVE, "remaining": 0}, "remaining", id="remaining-zero"),
    pytest.param({"action": APPROVE, "remaining": -1}, "remaining", id="remaining-negative"),
    pytest.param({"action": APPROVE, "remaining": "1"}, "remaining", id="remaining-string"),
    pytest.param({"action": APPROVE, "remaining": 1.5}, "remaining", id="remaining-float"),
    pytest.param({"action": APPROVE, "remaining": True}, "remaining", id="remaining-bool"),
    pytest.param({"action": APPROVE, "probability": 1.5}, "probability",
                 id="probability-above-1"),
    pytest.param({"action": APPROVE, "probability": -0.1}, "probability",
                 id="probability-negative"),
    pytest.param({"action": APPROVE, "probability": "0.5"}, "probability",
                 id="probability-string"),
    pytest.param({"action": APPROVE, "enabled": "yes"}, "enabled", id="enabled-string"),
    pytest.param({"action": APPROVE, "priority": 1.5}, "priority", id="priority-float"),
    pytest.param({"action": APPROVE, "note": 5}, "note", id="note-number"),
    pytest.param({"action": APPROVE, "bogus": 1}, "bogus", id="unknown-top-level"),
    pytest.param({"match": {"bogus": 1}, "action": APPROVE}, "match.bogus",
                 id="unknown-match-field"),
    pytest.param({"action": {"type": "approve", "bogus": 1}}, "action.bogus",
                 id="unknown-action-field"),
    pytest.param({"match": [], "action": APPROVE}, "match", id="match-array"),
    pytest.param({"match": {"card_number": "4111-1111-1111-1111"}, "action": APPROVE},
                 "match.card_number", id="card_number"),
    pytest.param({"match": {"card_number": 4111111111111111}, "action": APPROVE},
                 "match.card_number", id="card_number-number"),
    pytest.param({"match": {"cvv": "12"}, "action": APPROVE}, "match.cvv", id="cvv"),
    pytest.param({"match": {"last4": "abcd"}, "action": APPROVE}, "match.last4", id="last4"),
    pytest.param({"match": {"card_brand": "diners"}, "action": APPROVE}, "match.card_brand",
                 id="card_brand"),
    pytest.param({"match": {"method": "refund"}, "action": APPROVE}, "match.method",
                 id="method"),
    pytest.param({"match": {"payment_method": "cash"}, "action": APPROVE},
                 "match.payment_method", id="payment_method"),
    pytest.param({"match": {"attempt": 0}, "action": APPROVE}, "match.attempt", id="attempt"),
    pytest.param({"match": {"attempt": "2"}, "action": APPROVE}, "match.attempt",
                 id="attempt-string"),
    pytest.param({"match": {"parameters": {"a": 1}}, "action": APPROVE}, "match.parameters",
                 id="parameters-value"),
    pytest.param({"match": {"parameters": ["a"]}, "action": APPROVE}, "match.parameters",
                 id="parameters-array"),
    pytest.param({"match": {"description_contains": ""}, "action": APPROVE},
                 "match.description_contains", id="description_contains-empty"),
    pytest.param({"match": {"transaction_id": 12}, "action": APPROVE}, "match.transaction_id",
                 id="transaction_id-number"),
    pytest.param({"action": {"type": "approve", "parameters": {"k": {"nested": 1}}}},
                 "action.parameters", id="action-parameters"),
]


@pytest.mark.parametrize("body,field", INVALID_CREATES)
def test_an_invalid_rule_is_400_naming_the_field_and_not_stored(client, body, field):
    before = create(client, action={"type": "approve"})
    response = client.post("/api/rules", json=body)
    assert response.status_code == 400, response.json
    assert set(response.json) == {"error"}
    assert re.search(rf"(^|; ){re.escape(field)}\b", response.json["error"]) or (
        field == "amount_min" and "amount_min" in response.json["error"]), response.json
    assert rule_ids(client) == [before["id"]]


@pytest.mark.parametrize("body,field", [
    ({"remaining": -1}, "remaining"), ({"remaining": "2"}, "remaining"),
    ({"probability": 2}, "probability"), ({"enabled": "no"}, "enabled"),
    ({"priority": "1"}, "priority"), ({"bogus": True}, "bogus"), ({"id": 5}, "id"),
    ({"fired": 0}, "fired"),
    ({"match": {"amount": "x"}}, "match.amount"),
    ({"match": {"amount_min": "9", "amount_max": "1"}}, "amount_min"),
    pytest.param({"action": {"type": "delay", "seconds": -1}}, "action.seconds"),
    pytest.param({"action": {"type": "nope"}}, "action.type"),
])
def test_an_invalid_patch_is_400_naming_the_field_and_changes_nothing(client, body, field):
    rule = create(client, match={"amount": "10.00"}, action=MATCHED, remaining=2)
    response = client.patch(f"/api/rules/{rule['id']}", json=body)
    assert response.status_code == 400, response.json
    assert field in response.json["error"], response.json
    assert get(client, rule["id"]) == rule


@pytest.mark.parametrize("data", [b"", b"{not json", b"[1, 2]", b'"rule"', b"null"])
@pytest.mark.parametrize("verb", ["post", "patch"])
def test_a_body_that_is_not_a_json_object_is_400(client, data, verb):
    rule = create(client, action={"type": "approve"})
    path = "/api/rules" if verb == "post" else f"/api/rules/{rule['id']}"
    response = getattr(client, verb)(path, data=data, content_type="application/json")
    assert response.status_code == 400 and set(response.json) == {"error"}
    assert client.get("/api/rules").json["data"] == [rule]


# -- card data in a match --------------------------------------------------------------------

def test_card_number_and_cvv_are_never_stored_in_the_clear(client, app, db_path: Path):
    rule = create(client, match={"card_number": LIVE_VISA, "cvv": "987"}, action=MATCHED)
    assert rule["match"] == {"card_number": "************4242", "cvv": "***"}
    assert get(client, rule["id"])["match"] == rule["match"]
    assert client.get("/api/rules").json["data"][0]["match"] == rule["match"]
    other = create(client, action={"type": "approve"})
    changed = patch(client, other["id"], match={"card_number": "5105105105105100",
                                                "cvv": "4321", "amount": "1.00"})
    assert changed["match"] == {"card_number": "************5100", "cvv": "***",
                                "amount": "1.00"}

    # it still matches the card it names, and only with that CVV
    assert code_of(charge(client, cardnumber=LIVE_VISA, cvv="987")[0]) == "rule_matched"
    assert code_of(charge(client, cardnumber=LIVE_VISA, cvv="986")[0]) == "test_mode_live_card"

    with sqlite3.connect(db_path) as connection:
        stored = [row[0] for row in connection.execute("SELECT match FROM rules")]
    for text in stored:
        for secret in (LIVE_VISA, '"987"', "5105105105105100", '"4321"'):
            assert secret not in text
    with app.app_context():  # fold the WAL into the file, then read every byte on disk
        from fakeproc.store.models import db
        db.session.execute(db.text("PRAGMA wal_checkpoint(TRUNCATE)"))
    for path in db_path.parent.glob(db_path.name + "*"):
        data = path.read_bytes()
        assert LIVE_VISA.encode() not in data and b"5105105105105100" not in data, path


# -- match fields ----------------------------------------------------------------------------

def _card(**overrides: Any) -> tuple[str, dict[str, Any]]:
    return "/", card_payload(**overrides)


MATCH_FIELDS = [
    pytest.param({"connector": "Shop"}, ("/connectors/Shop/", card_payload()), [_card()],
                 id="connector"),
    pytest.param({"method": "tokenize"}, _card(method="tokenize", amount=...), [_card()],
                 id="method"),
    pytest.param({"payment_method": "ach-debit"}, ("/", ach_payload()), [_card()],
                 id="payment_method"),
    pytest.param({"card_number": "5555555555554444"}, _card(cardnumber="5555555555554444"),
                 [_card(), ("/", ach_payload())], id="card_number"),
    pytest.param({"card_brand": "mastercard"}, _card(cardnumber="5555555555554444"),
                 [_card()], id="card_brand"),
    pytest.param({"last4": "4444"}, _card(cardnumber="5555555555554444"), [_card()],
                 id="last4"),
    pytest.param({"amount": "10.00"}, _card(amount="10.0"),
                 [_card(amount="10.01"), _card(method="tokenize", amount=...)], id="amount"),
    pytest.param({"amount_min": "5", "amount_max": "15"}, _card(amount="15.00"),
                 [_card(amount="15.001"), _card(amount="4.99"),
                  _card(method="tokenize", amount=...)], id="amount_min-max"),
    pytest.param({"amount_min": "100"}, _card(amount="100"), [_card(amount="99.99")],
                 id="amount_min"),
    pytest.param({"amount_max": "1"}, _card(amount="0.50"), [_card(amount="1.01")],
                 id="amount_max"),
    pytest.param({"currency": "usd"}, _card(currency_code="USD"), [_card(currency_code="EUR")],
                 id="currency"),
    pytest.param({"postal_code": "10001"}, _card(postal_code="10001"),
                 [_card(), _card(postal_code=None)], id="postal_code"),
    pytest.param({"cvv": "321"}, _card(cvv="321"), [_card(), _card(cvv=...)], id="cvv"),
    pytest.param({"description_contains": "PIZ"}, _card(description="Large Pizza"),
                 [_card(description="salad"), _card(description=None)],
                 id="description_contains"),
    pytest.param({"parameters": {"flow": "vip"}},
                 _card(parameters={"flow": "vip", "other": "x"}),
                 [_card(parameters={"flow": "basic"}), _card(parameters={}),
                  _card(parameters=...)], id="parameters"),
    pytest.param({"transaction_id": "tx-the-one"}, _card(transaction_id="tx-the-one"),
                 [_card()], id="transaction_id"),
    pytest.param({"amount": "10.00", "currency": "USD", "card_brand": "visa"}, _card(),
                 [_card(amount="11.00"), _card(currency_code="CAD"),
                  _card(cardnumber="5555555555554444")], id="all-given-fields"),
]


@pytest.mark.parametrize("match,hit,misses", MATCH_FIELDS)
def test_each_match_field(client, match, hit, misses):
    assert client.post("/api/connectors", json={"unique_name": "Shop"}).status_code == 201
    rule = create(client, match=match, action=MATCHED)
    path, body = hit
    response = client.post(path, json=body)
    assert code_of(response) == "rule_matched"
    fired = client.get(f"/api/transactions/{body['transaction_id']}").json["attempts"][0]
    assert fired["rules"] == [f"rule:{rule['id']}"]
    for path, body in misses:
        assert code_of(client.post(path, json=body)) is None, body
    assert get(client, rule["id"])["fired"] == 1


def test_description_contains_looks_inside_a_json_description(client):
    create(client, match={"description_contains": "pizza"}, action=MATCHED)
    assert code_of(charge(client, description={"order": {"item": "Pizza"}})[0]) == "rule_matched"
    assert code_of(charge(client, description=["salad"])[0]) is None


@pytest.mark.parametrize("parameters", [{}, ..., {"flow": None}], ids=["empty", "absent", "null"])
def test_a_parameter_rule_needs_the_parameter_present(client, parameters):
    create(client, match={"parameters": {"flow": "None"}}, action=MATCHED)
    assert code_of(charge(client, parameters=parameters)[0]) is None


def test_attempt_match_picks_one_attempt(client):
    create(client, match={"attempt": 2}, action={"type": "http_error", "status": 503})
    body = card_payload()
    statuses = [client.post("/", json=body).status_code for _ in range(3)]
    assert statuses == [200, 503, 200]


# -- lifetime --------------------------------------------------------------------------------

def test_remaining_counts_transactions_for_an_outcome_rule(client):
    rule_id = create(client, action=MATCHED, remaining=2)["id"]
    first, body = charge(client)
    assert code_of(first) == "rule_matched"
    assert client.post("/", json=body).json == first.json  # a replay does not count
    assert get(client, rule_id)["remaining"] == 1
    assert code_of(charge(client)[0]) == "rule_matched"
    spent = get(client, rule_id)
    assert (spent["remaining"], spent["fired"], spent["live"]) == (0, 2, False)
    assert code_of(charge(client)[0]) is None


def test_remaining_counts_payments_for_a_delivery_rule(client):
    """SPEC §3: "the next 2 payments get a 503" means every attempt of two payments."""
    rule_id = create(client, action={"type": "http_error", "status": 503}, remaining=2)["id"]
    first, second, third = card_payload(), card_payload(), card_payload()
    assert [client.post("/", json=first).status_code for _ in range(3)] == [503, 503, 503]
    assert get(client, rule_id)["remaining"] == 1
    assert [client.post("/", json=second).status_code for _ in range(2)] == [503, 503]
    spent = get(client, rule_id)
    assert (spent["remaining"], spent["fired"], spent["live"]) == (0, 2, False)
    assert [client.post("/", json=third).status_code for _ in range(2)] == [200, 200]
    # Used up, the rule still holds the payments it fired on...
    assert client.post("/", json=first).status_code == 503
    assert get(client, rule_id)["fired"] == 2
    # ...until it is disabled: then the first one decides at last.
    patch(client, rule_id, enabled=False)
    assert client.post("/", json=first).json["charge_id"].startswith("ch_")


def test_a_delay_rule_holds_every_attempt_of_its_payment_replays_included(client):
    rule_id = create(client, action={"type": "delay", "seconds": 5}, remaining=1)["id"]
    body = card_payload()
    timings = []
    for _ in range(2):
        started = time.monotonic()
        answer = client.post("/", json=body).json
        timings.append(time.monotonic() - started)
    assert min(timings) >= 5 * TEST_SCALE, timings
    assert get(client, rule_id)["remaining"] == 0
    attempts = client.get(f"/api/transactions/{body['transaction_id']}").json["attempts"]
    assert [a["rules"] for a in attempts] == [[f"rule:{rule_id}"], [f"rule:{rule_id}"]]
    assert answer["charge_id"].startswith("ch_")
    started = time.monotonic()
    client.post("/", json=card_payload())  # the next payment is not delayed
    assert time.monotonic() - started < 5 * TEST_SCALE


def test_first_attempt_only_is_match_attempt_1(client):
    rule_id = create(client, match={"attempt": 1}, action={"type": "http_error", "status": 503},
                     remaining=1)["id"]
    body = card_payload()
    assert [client.post("/", json=body).status_code for _ in range(3)] == [503, 200, 200]
    assert get(client, rule_id)["remaining"] == 0
    assert client.post("/", json=card_payload()).status_code == 200


def test_a_deleted_rule_stops_holding_its_payment(client):
    rule_id = create(client, action={"type": "http_error", "status": 502}, remaining=1)["id"]
    body = card_payload()
    assert client.post("/", json=body).status_code == 502
    assert client.delete(f"/api/rules/{rule_id}").status_code == 204
    assert client.post("/", json=body).json["charge_id"].startswith("ch_")


def test_a_rule_keeps_to_its_match_on_later_attempts(client):
    """A retry that no longer matches the rule (here: another postal code, which is not part
    of the idempotency comparison) is not held by it."""
    create(client, match={"postal_code": "94111"},
           action={"type": "http_error", "status": 503}, remaining=1)
    body = card_payload(postal_code="94111")
    assert [client.post("/", json=body).status_code for _ in range(2)] == [503, 503]
    moved = client.post("/", json={**body, "postal_code": "10001"})
    assert moved.status_code == 200 and moved.json["charge_id"].startswith("ch_")


def test_a_probability_is_drawn_once_per_payment(client):
    create(client, action={"type": "http_error", "status": 503}, probability=0.5)
    outcomes = []
    for _ in range(24):
        body = card_payload()
        outcomes.append(tuple(client.post("/", json=body).status_code for _ in range(3)))
    assert set(outcomes) == {(503, 503, 503), (200, 200, 200)}, outcomes


@pytest.mark.parametrize("action,hit", [
    (MATCHED, lambda response: response.json()["error_code"] == "rule_matched"),
    ({"type": "http_error", "status": 503}, lambda response: response.status_code == 503),
], ids=["outcome", "delivery"])
def test_remaining_is_exact_under_concurrency(client, server, action, hit):
    """"Decline the next 2 charges" declines exactly 2 of 12 arriving at once."""
    rule_id = create(client, action=action, remaining=2)["id"]
    responses = post_concurrently([(server.url + "/", card_payload()) for _ in range(12)])
    assert sum(1 for response in responses if hit(response)) == 2
    spent = get(client, rule_id)
    assert (spent["remaining"], spent["fired"]) == (0, 2)


def test_remaining_is_exact_when_retries_race_their_originals(client, server):
    """Two of five payments get the 503, each on all four of its attempts sent at once; the
    other three are never touched."""
    rule = create(client, action={"type": "http_error", "status": 503}, remaining=2)
    bodies = [card_payload() for _ in range(5)]
    responses = post_concurrently([(server.url + "/", body) for body in bodies * 4])
    by_payment: dict[str, list[int]] = {}
    for body, response in zip(bodies * 4, responses, strict=True):
        by_payment.setdefault(body["transaction_id"], []).append(response.status_code)
    patterns = sorted(tuple(sorted(codes)) for codes in by_payment.values())
    assert patterns == [(200,) * 4] * 3 + [(503,) * 4] * 2, by_payment
    after = get(client, rule["id"])
    assert (after["remaining"], after["fired"]) == (0, 2)


def test_a_rule_without_remaining_fires_forever_and_counts(client):
    rule_id = create(client, match={"amount": "10.00"}, action=MATCHED)["id"]
    for _ in range(3):
        assert code_of(charge(client)[0]) == "rule_matched"
    rule = get(client, rule_id)
    assert (rule["remaining"], rule["fired"], rule["live"]) == (None, 3, True)


@pytest.mark.parametrize("probability,fires", [(0.0, False), (1.0, True)])
def test_probability_bounds(client, probability, fires):
    create(client, action=MATCHED, probability=probability)
    codes = {code_of(charge(client)[0]) for _ in range(5)}
    assert codes == ({"rule_matched"} if fires else {None})


def test_a_disabled_rule_never_fires(client):
    create(client, action=MATCHED, enabled=False)
    assert code_of(charge(client)[0]) is None


def test_lower_priority_first_and_ties_oldest_first(client):
    older = create(client, action={"type": "decline", "error_code": "older"})["id"]
    create(client, action={"type": "decline", "error_code": "newer"})
    assert code_of(charge(client)[0]) == "older"
    create(client, action={"type": "decline", "error_code": "urgent"}, priority=-5)
    assert code_of(charge(client)[0]) == "urgent"
    patch(client, older, priority=-10)
    assert code_of(charge(client)[0]) == "older"


def test_a_delivery_rule_and_an_outcome_rule_both_fire(client):
    delay = create(client, action={"type": "delay", "seconds": 5})["id"]
    decline = create(client, action=MATCHED)["id"]
    started = time.monotonic()
    response, body = charge(client)
    assert code_of(response) == "rule_matched"
    assert time.monotonic() - started >= 5 * TEST_SCALE
    fired = client.get(f"/api/transactions/{body['transaction_id']}").json["attempts"][0]
    assert sorted(fired["rules"]) == sorted([f"rule:{delay}", f"rule:{decline}"])


def test_rule_parameters_are_returned_to_twilio(client):
    create(client, action={"type": "approve", "parameters": {"risk": "low"}})
    response, _ = charge(client)
    assert response.json["parameters"] == {"risk": "low"}
    assert response.json["charge_id"].startswith("ch_")


# -- reset -----------------------------------------------------------------------------------

def test_reset_keeps_rules_unless_asked(client):
    ids = [create(client, action={"type": "approve"})["id"] for _ in range(3)]
    charge(client)
    plain = client.post("/api/reset")
    assert plain.status_code == 200
    assert plain.json == {"status": "ok", "deleted": {"transactions": 1, "attempts": 1}}
    assert sorted(rule_ids(client)) == ids
    kept = client.post("/api/reset", json={"rules": False})
    assert kept.status_code == 200 and sorted(rule_ids(client)) == ids
    cleared = client.post("/api/reset", json={"rules": True})
    assert cleared.status_code == 200
    assert cleared.json == {"status": "ok", "deleted": {"transactions": 0, "attempts": 0,
                                                        "rules": 3}}
    assert rule_ids(client) == []
    assert code_of(charge(client)[0]) is None


def test_cleared_rules_stop_firing_at_once(client):
    create(client, action=MATCHED)
    assert code_of(charge(client)[0]) == "rule_matched"
    client.post("/api/reset", json={"rules": True})
    assert code_of(charge(client)[0]) is None


# -- many rules ------------------------------------------------------------------------------

def _inert_rule(i: int) -> dict[str, Any]:
    """A rule that never fires for `card_payload()`: non-matching, disabled or used up."""
    kind = i % 5
    if kind == 0:
        return {"match": {"transaction_id": f"nobody-{i}"}, "action": MATCHED}
    if kind == 1:
        return {"match": {"amount_min": "500000", "currency": "USD"},
                "action": {"type": "http_error", "status": 500}, "priority": i % 50}
    if kind == 2:
        return {"match": {"card_number": "5555555555554444", "cvv": "999",
                          "parameters": {"flow": str(i)}},
                "action": {"type": "delay", "seconds": 30}}
    if kind == 3:
        return {"match": {"description_contains": f"nothing-{i}", "postal_code": "00001"},
                "action": {"type": "hang"}, "enabled": False}
    return {"match": {"attempt": 2, "connector": "Elsewhere"}, "action": MATCHED,
            "remaining": 1}


def test_many_inert_rules_keep_a_charge_fast(client):
    created = [create(client, **_inert_rule(i))["id"] for i in range(2000)]
    for rule_id in created[4::50]:  # some of the counted ones used up
        patch(client, rule_id, remaining=0)
    assert len(rule_ids(client)) == 2000

    response, _ = charge(client)  # the first one loads the live rules
    assert code_of(response) is None
    timings = []
    for _ in range(7):
        started = time.monotonic()
        response, _ = charge(client)
        timings.append(time.monotonic() - started)
        assert code_of(response) is None
    assert statistics.median(timings) < 0.1, timings

    # and a rule added behind all of them still fires
    create(client, match={"amount": "10.00"}, action=MATCHED)
    assert code_of(charge(client)[0]) == "rule_matched"


@pytest.mark.parametrize("probability", [0.2, 0.7])
def test_a_rule_fires_on_about_its_probability_s_share_of_payments_each_drawn_once(
        client, probability):
    rule = client.post("/api/rules", json={
        "match": {"description_contains": "draw"}, "probability": probability,
        "action": {"type": "decline", "error_code": "card_declined"}}).json
    payments = [card_payload(description="draw") for _ in range(300)]
    declined = [client.post("/", json=body).json["error_code"] == "card_declined"
                for body in payments]
    # 300 draws: the share strays 0.1 or more from the probability once in 5,000 runs or less.
    assert abs(sum(declined) / 300 - probability) < 0.1, sum(declined)
    assert client.get(f"/api/rules/{rule['id']}").json["fired"] == sum(declined)
    # A payment's retries share its draw.
    for body, was_declined in list(zip(payments, declined))[:30]:
        again = client.post("/", json=body).json
        assert (again["error_code"] == "card_declined") == was_declined
