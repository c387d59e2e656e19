"""SPEC §5 read side and connectors: lists, filters, cursors, details, reset, admin token."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
import requests

from conftest import ServeGroup, card_payload

# -- transactions ----------------------------------------------------------------------------


def charge(client, **overrides) -> dict:
    body = card_payload(**overrides)
    client.post("/", json=body)
    return body


def listed_ids(client, **params) -> list[str]:
    response = client.get("/api/transactions", query_string=params)
    assert response.status_code == 200, response.json
    return [t["transaction_id"] for t in response.json["data"]]


def test_transactions_are_listed_newest_first_with_their_fields(client):
    older, newer = charge(client), charge(client, cardnumber="378282246310005", cvv="1234")
    listing = client.get("/api/transactions").json
    assert [t["transaction_id"] for t in listing["data"]] == [newer["transaction_id"],
                                                              older["transaction_id"]]
    assert listing["next_cursor"] is None
    item = listing["data"][0]
    assert item | {"charge_id": None, "created_at": None, "settled_at": None,
                   "last_attempt_at": None, "response": None} == {
        "transaction_id": newer["transaction_id"], "connector": "Default", "method": "charge",
        "payment_method": "credit-card", "status": "succeeded", "charge_id": None,
        "error_code": None, "error_message": None, "amount": "10.00", "currency": "USD",
        "card_brand": "amex", "last4": "0005", "routing_number": None, "postal_code": "94111",
        "description": "pizza", "parameters": {}, "attempts": 1, "retried": False,
        "orphaned": False, "protocol_violation": False, "issued": 1, "double_charged": False,
        "response": None, "created_at": None, "settled_at": None, "last_attempt_at": None}
    assert re.fullmatch(r"ch_[0-9a-f]{32}", item["charge_id"])
    assert item["response"] == {"charge_id": item["charge_id"], "error_code": None,
                                "error_message": None}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", item["created_at"])


def test_filters_narrow_the_list(client):
    client.post("/api/connectors", json={"unique_name": "Shop"})
    ok = charge(client)
    declined = charge(client, cardnumber="4242424242424242")
    retried = charge(client)
    client.post("/", json=retried)
    token = card_payload(method="tokenize", amount=...)
    client.post("/connectors/Shop/", json=token)
    assert listed_ids(client, status="declined") == [declined["transaction_id"]]
    assert listed_ids(client, retried="true") == [retried["transaction_id"]]
    assert listed_ids(client, connector="Shop") == [token["transaction_id"]]
    assert listed_ids(client, method="tokenize") == [token["transaction_id"]]
    assert listed_ids(client, transaction_id=ok["transaction_id"]) == [ok["transaction_id"]]
    assert listed_ids(client, orphaned="true") == []
    assert listed_ids(client, status="in_flight") == []


def test_search_finds_by_transaction_id_charge_id_and_last4(client):
    amex = charge(client, cardnumber="378282246310005", cvv="1234")
    visa = charge(client)
    charge_id = client.get(f"/api/transactions/{visa['transaction_id']}").json["charge_id"]
    assert listed_ids(client, q=amex["transaction_id"]) == [amex["transaction_id"]]
    assert listed_ids(client, q=charge_id) == [visa["transaction_id"]]
    assert listed_ids(client, q="0005") == [amex["transaction_id"]]


def test_a_search_that_matches_an_id_and_last4s_pages_newest_first_each_once(client):
    """A search for digits matches transaction ids and last 4s alike: the pages merge both,
    newest first, each transaction once, with the other filters still applied."""
    sent = []
    for i in range(7):
        if i == 3:  # a transaction id that is also a last 4, on a card ending otherwise
            sent.append(charge(client, transaction_id="1111",
                               cardnumber="5555555555554444")["transaction_id"])
        else:
            sent.append(charge(client)["transaction_id"])  # 4111 1111 1111 1111
    charge(client, cardnumber="5555555555554444")  # matches nothing
    charge(client, amount="2001.00")  # declined: the status filter leaves it out
    seen, cursor = [], None
    while True:
        params = {"q": "1111", "status": "succeeded", "limit": 2} | (
            {"cursor": cursor} if cursor else {})
        page = client.get("/api/transactions", query_string=params).json
        assert len(page["data"]) <= 2
        seen += [t["transaction_id"] for t in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(sent))


def test_the_cursor_walks_every_page_once(client):
    sent = [charge(client)["transaction_id"] for _ in range(7)]
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/transactions", query_string=params).json
        assert len(page["data"]) <= 3
        seen += [t["transaction_id"] for t in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(sent))


@pytest.mark.parametrize("params, message", [
    ({"limit": "0"}, "limit must be from 1 to 500"),
    ({"limit": "many"}, "limit must be a whole number"),
    ({"cursor": "not-ours"}, "cursor is not one this API gave out"),
    ({"status": "paid"}, "status must be one of succeeded, declined, in_flight, failed"),
    ({"retried": "maybe"}, "retried must be true or false"),
])
def test_bad_list_parameters_are_400_with_a_message(client, params, message):
    response = client.get("/api/transactions", query_string=params)
    assert response.status_code == 400
    assert response.json == {"error": message}


def test_an_unknown_transaction_is_404(client):
    response = client.get("/api/transactions/nope")
    assert response.status_code == 404
    assert response.json == {"error": "no transaction nope"}


@pytest.mark.parametrize("transaction_id", ["ends-in-a-line-break\n", "a\r\nb/c", "x\u2028y"])
def test_a_transaction_id_with_line_breaks_or_slashes_can_be_looked_up(client, transaction_id):
    assert client.post("/", json=card_payload(transaction_id=transaction_id)).status_code == 200
    path = quote(transaction_id, safe="")
    detail = client.get(f"/api/transactions/{path}")
    assert detail.status_code == 200 and detail.json["transaction_id"] == transaction_id
    page = client.get(f"/admin/transactions/{path}")
    assert page.status_code == 200


def test_reset_forgets_transactions_and_keeps_connectors(client):
    client.post("/api/connectors", json={"unique_name": "Shop"})
    charge(client)
    answer = client.post("/api/reset")
    assert answer.status_code == 200
    assert answer.json["deleted"] == {"transactions": 1, "attempts": 1}
    assert listed_ids(client) == []
    assert client.get("/api/connectors/Shop").status_code == 200
    assert client.post("/api/reset", json={"rules": True}).status_code == 200
    assert client.post("/api/reset", json={"rules": "yes"}).status_code == 400


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/api/nothing").json == {"error": "The requested URL was not found on the "
                                                        "server. If you entered the URL manually "
                                                        "please check your spelling and try "
                                                        "again."}
    wrong = client.delete("/api/transactions")
    assert wrong.status_code == 405 and "error" in wrong.json
    assert "GET" in wrong.headers["Allow"]


def test_health_names_the_version(client):
    health = client.get("/api/health").json
    assert health["status"] == "ok" and health["version"]


@pytest.mark.parametrize("scale", [1.0, 0.01, 2.5])
def test_health_tells_the_time_scale_and_the_connector_timeout_it_makes(make_app, scale):
    health = make_app(TIME_SCALE=scale).test_client().get("/api/health").json
    assert health["time_scale"] == scale
    assert health["connector_timeout_seconds"] == pytest.approx(10 * scale)


# -- connectors ------------------------------------------------------------------------------


def test_default_exists_from_the_first_start(client):
    assert client.get("/api/connectors").json == {"data": [{
        "unique_name": "Default", "username": None, "has_password": False, "mode": "test",
        "idempotency": "replay", "magic_values": True, "timeout_seconds": 10.0}],
        "next_cursor": None}


def test_connectors_are_created_changed_and_deleted(client):
    created = client.post("/api/connectors", json={
        "unique_name": "Shop_1", "username": "shop", "password": "s3cret", "mode": "open",
        "idempotency": "duplicate_error", "magic_values": False, "timeout_seconds": 5})
    assert created.status_code == 201
    assert created.json == {"unique_name": "Shop_1", "username": "shop", "has_password": True,
                            "mode": "open", "idempotency": "duplicate_error",
                            "magic_values": False, "timeout_seconds": 5.0}
    assert "s3cret" not in client.get("/api/connectors").get_data(as_text=True)
    changed = client.patch("/api/connectors/Shop_1", json={"password": None, "mode": "test"})
    assert changed.json["has_password"] is False and changed.json["mode"] == "test"
    assert changed.json["username"] == "shop"
    assert client.delete("/api/connectors/Shop_1").status_code == 204
    assert client.get("/api/connectors/Shop_1").status_code == 404


@pytest.mark.parametrize("body, fragment", [
    ({"unique_name": "has space"}, "unique_name"),
    ({"unique_name": "X", "mode": "live"}, "mode"),
    ({"unique_name": "X", "idempotency": "maybe"}, "idempotency"),
    ({"unique_name": "X", "timeout_seconds": -1}, "timeout_seconds"),
    ({"unique_name": "X", "magic_values": "yes"}, "magic_values"),
    ({"unique_name": "X", "colour": "red"}, "colour"),
    ({}, "unique_name"),
])
def test_a_malformed_connector_is_400_naming_the_field(client, body, fragment):
    response = client.post("/api/connectors", json=body)
    assert response.status_code == 400
    assert fragment in response.json["error"]
    assert [c["unique_name"] for c in client.get("/api/connectors").json["data"]] == ["Default"]


def test_connector_conflicts_and_protections(client):
    assert client.post("/api/connectors", json={"unique_name": "Default"}).status_code == 409
    assert client.delete("/api/connectors/Default").status_code == 409
    assert client.patch("/api/connectors/Nope", json={}).status_code == 404
    assert client.post("/api/connectors", data="[1]").status_code == 400
    assert client.post("/api/connectors", data="{").json == {"error": "the body is not valid JSON"}


def test_start_up_credentials_protect_default(make_app, db_path):
    from fakeproc import prepare_store

    app = make_app(USERNAME="twilio", PASSWORD="pw")
    prepare_store(app)
    client = app.test_client()
    assert client.post("/", json=card_payload()).status_code == 401
    good = client.post("/", json=card_payload(), auth=("twilio", "pw"))
    assert good.status_code == 200 and good.json["error_code"] is None


# -- admin token -----------------------------------------------------------------------------


def test_the_admin_token_guards_every_call_but_health(make_app):
    client = make_app(ADMIN_TOKEN="t0ken").test_client()
    assert client.get("/api/health").status_code == 200
    for path in ("/api/transactions", "/api/retries", "/api/connectors", "/api/openapi.json"):
        denied = client.get(path)
        assert denied.status_code == 401 and "error" in denied.json
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer t0ken"}).status_code == 200
    assert client.post("/api/reset").status_code == 401
    # The processor endpoint is guarded by connector credentials, not by the admin token.
    assert client.post("/", json=card_payload()).status_code == 200


def test_beyond_loopback_without_credentials_a_token_is_made_and_required(tmp_path):
    group = ServeGroup(tmp_path, host="0.0.0.0")  # listens everywhere; traffic stays on loopback
    try:
        (server,) = group(f"sqlite:///{tmp_path / 's.db'}")
        printed = re.search(r"admin token for this run: (\S+)", server.log())
        assert printed, server.log()
        api = server.url + "/api/transactions"
        assert requests.get(api, timeout=30).status_code == 401
        auth = {"Authorization": f"Bearer {printed.group(1)}"}
        assert requests.get(api, headers=auth, timeout=30).status_code == 200
    finally:
        group.stop()
