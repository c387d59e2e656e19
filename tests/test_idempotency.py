"""SPEC §2: one outcome per (connector, transaction_id); every attempt logged; retries replayed,
in-flight retries wait, mismatches refused, policies per connector, late and orphan flags."""

from __future__ import annotations

import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import LiveServer, ach_payload, card_payload, post_concurrently

DELAYED_12S = "4012.00"  # magic amount: the first attempt takes 12 s of configured time


def detail(client, transaction_id: str, **params) -> dict:
    response = client.get(f"/api/transactions/{transaction_id}", query_string=params)
    assert response.status_code == 200, response.json
    return response.json


def set_policy(client, policy: str, connector: str = "Default") -> None:
    assert client.patch(f"/api/connectors/{connector}",
                        json={"idempotency": policy}).status_code == 200


def test_a_retry_replays_the_original_answer(client):
    body = card_payload()
    first = client.post("/", json=body).json
    again = client.post("/", json=body).json
    assert again == first
    record = detail(client, body["transaction_id"])
    assert record["attempts"][1]["kind"] == "replay"
    assert record["issued"] == 1 and not record["double_charged"]


def test_a_declined_transaction_replays_its_decline(client):
    body = card_payload(cardnumber="4242424242424242")
    first = client.post("/", json=body).json
    assert first["error_code"] == "test_mode_live_card"
    assert client.post("/", json=body).json == first


def test_amounts_written_differently_are_the_same_payload(client):
    body = card_payload(amount="10.0")
    first = client.post("/", json=body).json
    assert client.post("/", json={**body, "amount": "10.00"}).json == first


def test_attempts_are_numbered_in_order_with_gaps(client):
    body = card_payload()
    for _ in range(3):
        client.post("/", json=body)
    record = detail(client, body["transaction_id"])
    assert [a["number"] for a in record["attempts"]] == [1, 2, 3]
    assert record["attempts"][0]["gap_seconds"] is None
    assert all(a["gap_seconds"] >= 0 for a in record["attempts"][1:])
    assert record["retried"] is True and record["status"] == "succeeded"
    assert all(a["delivery"] == "response" and a["status_code"] == 200
               for a in record["attempts"])


def test_each_retry_is_logged_on_one_line(client, caplog):
    body = card_payload(transaction_id="tx-logged")
    with caplog.at_level(logging.INFO, logger="fakeproc"):
        client.post("/", json=body)
        client.post("/", json=body)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retry ")]
    assert len(lines) == 1
    assert re.fullmatch(r"retry connector=Default transaction_id=tx-logged attempt=2 "
                        r"gap=\d+\.\d\ds", lines[0])


def test_the_same_transaction_id_on_two_connectors_is_two_transactions(client):
    client.post("/api/connectors", json={"unique_name": "Other"})
    body = card_payload()
    one = client.post("/", json=body).json
    other = client.post("/connectors/Other/", json=body).json
    assert one["charge_id"] != other["charge_id"]
    ambiguous = client.get(f"/api/transactions/{body['transaction_id']}")
    assert ambiguous.status_code == 409
    assert detail(client, body["transaction_id"], connector="Other")["charge_id"] == \
        other["charge_id"]


@pytest.mark.parametrize("policy", ["replay", "duplicate_error", "reprocess"])
@pytest.mark.parametrize("change, named", [
    ({"amount": "11.00"}, "amount"),
    ({"cardnumber": "5555555555554444"}, "cardnumber"),
    ({"currency_code": "EUR"}, "currency_code"),
    ({"method": "tokenize"}, "method"),
])
def test_a_mismatched_retry_is_refused_under_every_policy(client, policy, change, named):
    set_policy(client, policy)
    body = card_payload()
    client.post("/", json=body)
    answer = client.post("/", json={**body, **change})
    assert answer.status_code == 200
    id_key = "token_id" if change.get("method") == "tokenize" else "charge_id"
    assert answer.json[id_key] is None
    assert answer.json["error_code"] == "duplicate_transaction"
    assert named in answer.json["error_message"]
    record = detail(client, body["transaction_id"])
    assert record["protocol_violation"] is True
    assert record["attempts"][1]["protocol_violation"] is True
    assert record["attempts"][0]["protocol_violation"] is False


def test_a_bank_account_change_is_named(client):
    body = ach_payload()
    client.post("/", json=body)
    answer = client.post("/", json={**body, "bankaccountnumber": "12345678"}).json
    assert "bankaccountnumber" in answer["error_message"]


def test_duplicate_error_policy_answers_retries_with_the_original_id(client):
    set_policy(client, "duplicate_error")
    body = card_payload()
    first = client.post("/", json=body).json
    again = client.post("/", json=body).json
    assert again["charge_id"] == first["charge_id"]
    assert again["error_code"] == "duplicate_transaction"
    assert detail(client, body["transaction_id"])["issued"] == 1


def test_reprocess_policy_charges_again_and_the_ledger_flags_it(client):
    set_policy(client, "reprocess")
    body = card_payload()
    first = client.post("/", json=body).json
    again = client.post("/", json=body).json
    assert again["error_code"] is None
    assert again["charge_id"] != first["charge_id"]
    record = detail(client, body["transaction_id"])
    assert record["issued"] == 2 and record["double_charged"] is True
    assert record["charge_id"] == first["charge_id"]
    assert [a["result_id"] for a in record["attempts"]] == [first["charge_id"],
                                                           again["charge_id"]]


def test_retries_api_lists_retried_transactions_with_gaps(client):
    retried, single = card_payload(), card_payload()
    for _ in range(3):
        client.post("/", json=retried)
    client.post("/", json=single)
    listing = client.get("/api/retries").json
    assert [r["transaction_id"] for r in listing["data"]] == [retried["transaction_id"]]
    entry = listing["data"][0]
    assert entry["attempts"] == 3 and len(entry["gaps_seconds"]) == 2
    assert listing["next_cursor"] is None


# -- over real HTTP: races and in-flight retries ---------------------------------------------

def test_twenty_concurrent_duplicates_make_one_charge(server, client):
    body = card_payload()
    answers = post_concurrently([(server.url + "/", body)] * 20)
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1
    assert answers[0].json()["error_code"] is None
    record = detail(client, body["transaction_id"])
    assert record["issued"] == 1
    assert [a["number"] for a in record["attempts"]] == list(range(1, 21))


def test_concurrent_duplicates_of_a_delayed_charge_wait_for_it(server, client):
    body = card_payload(amount=DELAYED_12S)
    answers = post_concurrently([(server.url + "/", body)] * 20)
    assert len({r.content for r in answers}) == 1
    assert answers[0].json()["charge_id"].startswith("ch_")
    assert detail(client, body["transaction_id"])["issued"] == 1


def wait_for_status(client, transaction_id: str, status: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/api/transactions/{transaction_id}")
        if response.status_code == 200 and response.json["status"] == status:
            return response.json
        time.sleep(0.002)
    raise AssertionError(f"{transaction_id} never reached {status}")


def test_a_retry_during_the_first_attempt_gets_its_charge_id(server, client):
    body = card_payload(amount=DELAYED_12S)
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(requests.post, server.url + "/", json=body, timeout=30)
        in_flight = wait_for_status(client, body["transaction_id"], "in_flight")
        assert in_flight["charge_id"] is None
        listed = client.get("/api/transactions", query_string={"status": "in_flight"}).json
        assert [t["transaction_id"] for t in listed["data"]] == [body["transaction_id"]]
        retry = requests.post(server.url + "/", json=body, timeout=30)
        original = first.result()
    assert retry.json() == original.json()
    assert retry.json()["charge_id"].startswith("ch_")
    record = detail(client, body["transaction_id"])
    assert record["status"] == "succeeded" and record["issued"] == 1
    first_attempt, second_attempt = record["attempts"]
    assert first_attempt["late"] is True  # 12 s is past the 10 s connector timeout
    assert second_attempt["kind"] == "replay"


def test_twilio_style_timeout_and_retry_delivers_the_charge_in_time(make_app):
    # Twilio gives up after 10 s and retries with the same transaction_id; the processor
    # finishes the first attempt at 15 s and must hand its charge_id to the retry.
    scale = 0.05
    app = make_app(TIME_SCALE=scale)
    body = card_payload(amount="4015.00")
    with LiveServer(app) as live:
        with pytest.raises(requests.ReadTimeout):
            requests.post(live.url + "/", json=body, timeout=10 * scale)
        retry = requests.post(live.url + "/", json=body, timeout=10 * scale)
    assert retry.json()["charge_id"].startswith("ch_")
    with app.test_client() as client:
        record = detail(client, body["transaction_id"])
    first_attempt, second_attempt = record["attempts"]
    assert first_attempt["late"] is True and second_attempt["late"] is False
    assert second_attempt["result_id"] == retry.json()["charge_id"]
    assert record["orphaned"] is False and record["issued"] == 1


def test_a_charge_answered_only_late_is_an_orphan(server, client):
    body = card_payload(amount=DELAYED_12S)
    answer = requests.post(server.url + "/", json=body, timeout=30).json()
    assert answer["charge_id"].startswith("ch_")
    record = detail(client, body["transaction_id"])
    assert record["attempts"][0]["late"] is True
    assert record["orphaned"] is True
    orphans = client.get("/api/transactions", query_string={"orphaned": "true"}).json["data"]
    assert [t["transaction_id"] for t in orphans] == [body["transaction_id"]]
    # A later retry answered in time reaches Twilio: the charge is no longer an orphan.
    requests.post(server.url + "/", json=body, timeout=30)
    assert detail(client, body["transaction_id"])["orphaned"] is False


def test_a_delay_within_the_timeout_is_not_late(make_app):
    app = make_app(TIME_SCALE=0.05)  # a 2 s delay is 100 ms, the 10 s timeout 500 ms
    body = card_payload(amount="4002.00")
    with LiveServer(app) as live:
        requests.post(live.url + "/", json=body, timeout=30)
    with app.test_client() as client:
        record = detail(client, body["transaction_id"])
    assert record["attempts"][0]["late"] is False and record["orphaned"] is False
