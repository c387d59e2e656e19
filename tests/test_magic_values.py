"""SPEC §3 magic values, one test per row of the table: decline amounts, processing_error,
delays, hangs, broken answers, HTTP statuses, the CVV and postal code triggers (tokenize too),
every `fakeproc_scenario` step; then the precedence rules: switchable per connector, rules beat
magic values, magic values beat the test-mode checks.

Durations run on the time scale: the `client` fixture's 0.01 (a 12 s delay is 120 ms), and an
app at 0.001 for the 65 s hangs (65 ms). Flask's test client cannot drop or hold a connection:
it gets a 502 with `X-Fakeproc-Fault: drop|hang|truncated` instead; one live-server test checks
the real sockets.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest
import requests

from conftest import TEST_SCALE, LiveServer, ach_payload, card_payload

FAST_SCALE = 0.001  # for the hangs: 65 s of configured time in 65 ms
HANG_SECONDS = 65.0
LIVE_VISA = "4242424242424242"  # Luhn-valid, not one of the TEST-mode cards
LUHN_INVALID = "4111111111111112"
SCENARIO = "fakeproc_scenario"

DECLINE_MESSAGES = {
    "do_not_honor": "The card was declined: do not honor.",
    "insufficient_funds": "The card has insufficient funds.",
    "card_velocity_exceeded": "The card has exceeded its spending velocity.",
    "expired_card": "The card has expired.",
    "incorrect_number": "The card number is incorrect.",
    "incorrect_cvc": "The card's security code is incorrect.",
    "incorrect_zip": "The card's postal code is incorrect.",
    "lost_card": "The card was reported lost.",
    "stolen_card": "The card was reported stolen.",
    "fraudulent": "The payment was declined as fraudulent.",
    "card_declined": "The card was declined.",
    "generic_decline": "The payment was declined.",
    "processing_error": "An error occurred while processing the payment.",
}


# -- helpers ---------------------------------------------------------------------------------

def send(client, body: dict[str, Any], path: str = "/"):
    """POST a processor request; return the response and the seconds it took."""
    started = time.monotonic()
    response = client.post(path, json=body)
    return response, time.monotonic() - started


def detail(client, transaction_id: str) -> dict[str, Any]:
    response = client.get(f"/api/transactions/{transaction_id}")
    assert response.status_code == 200, response.get_data()
    return response.json


def answer(response) -> dict[str, Any]:
    assert response.status_code == 200, (response.status_code, response.get_data()[:300])
    assert response.mimetype == "application/json", response.headers
    return json.loads(response.get_data())


def approved_id(response, key: str = "charge_id") -> str:
    body = answer(response)
    assert body["error_code"] is None and body["error_message"] is None, body
    prefix = {"charge_id": "ch_", "token_id": "tok_"}[key]
    assert isinstance(body[key], str) and body[key].startswith(prefix), body
    return body[key]


def decline(code: str, key: str = "charge_id") -> dict[str, Any]:
    return {key: None, "error_code": code, "error_message": DECLINE_MESSAGES[code]}


def took(attempt: dict[str, Any]) -> float:
    """Seconds between an attempt's arrival and its answer, from its record."""
    received = datetime.fromisoformat(attempt["received_at"])
    responded = datetime.fromisoformat(attempt["responded_at"])
    return (responded - received).total_seconds()


def fault_of(response) -> str | None:
    """The connection fault the test client was told about (drop, hang, truncated)."""
    if response.status_code == 502 and "X-Fakeproc-Fault" in response.headers:
        return response.headers["X-Fakeproc-Fault"]
    return None


def scenario(script: str, **overrides: Any) -> dict[str, Any]:
    return card_payload(parameters={SCENARIO: script}, **overrides)


def tokenize(**overrides: Any) -> dict[str, Any]:
    return card_payload(method="tokenize", amount=..., **overrides)


@pytest.fixture
def fast_client(make_app):
    """A client of an app at time scale 0.001, for the 65 s hangs."""
    return make_app(TIME_SCALE=FAST_SCALE).test_client()


# -- 2000.00-2999.99: declines ---------------------------------------------------------------

DECLINE_AMOUNTS = [
    ("2000.00", "do_not_honor"), ("2001.00", "insufficient_funds"),
    ("2002.00", "card_velocity_exceeded"), ("2004.00", "expired_card"),
    ("2005.00", "incorrect_number"), ("2010.00", "incorrect_cvc"),
    ("2011.00", "incorrect_zip"), ("2012.00", "lost_card"), ("2013.00", "stolen_card"),
    ("2014.00", "fraudulent"), ("2046.00", "card_declined"),
    # the integer part decides: the cents never matter
    ("2001.99", "insufficient_funds"), ("2046.5", "card_declined"),
    # not in the list: generic_decline
    ("2003.00", "generic_decline"), ("2500.00", "generic_decline"),
    ("2999.99", "generic_decline"),
]


@pytest.mark.parametrize("amount,code", DECLINE_AMOUNTS)
def test_2000_range_amount_declines_by_its_integer_part(client, amount, code):
    body = card_payload(amount=amount)
    response, _ = send(client, body)
    assert answer(response) == decline(code)
    record = detail(client, body["transaction_id"])
    assert record["status"] == "declined" and record["charge_id"] is None
    assert record["error_code"] == code
    assert f"magic:amount={amount}" in record["attempts"][0]["rules"]


@pytest.mark.parametrize("amount", ["3000.00", "3000.5", "3000.99"])
def test_3000_range_amount_is_a_processing_error(client, amount):
    response, _ = send(client, card_payload(amount=amount))
    assert answer(response) == decline("processing_error")


@pytest.mark.parametrize("amount", ["1999.99", "3001.00", "3999.99", "4200.00", "4308.00",
                                    "4399.99", "4600.00", "10.00"])
def test_amounts_outside_every_range_are_plain(client, amount):
    body = card_payload(amount=amount)
    response, _ = send(client, body)
    approved_id(response)
    assert detail(client, body["transaction_id"])["attempts"][0]["rules"] == []


def test_a_tokenize_answer_is_declined_by_the_token_id_key(client):
    """A decline from a scenario on tokenize keeps the id key the method calls for."""
    response, _ = send(client, tokenize(parameters={SCENARIO: "decline:lost_card"}))
    assert answer(response) == decline("lost_card", "token_id")


# -- 4000.00-4099.99: delay the first attempt, then approve ------------------------------------

@pytest.mark.parametrize("amount,seconds", [("4000.00", 0.0), ("4001.50", 1.5),
                                            ("4020.00", 20.0)])
def test_4000_range_delays_the_first_attempt_then_approves(client, amount, seconds):
    body = card_payload(amount=amount)
    response, elapsed = send(client, body)
    charge_id = approved_id(response)
    scaled = seconds * TEST_SCALE
    assert elapsed >= scaled
    first = detail(client, body["transaction_id"])["attempts"][0]
    assert took(first) >= scaled - 0.001
    assert first["delivery"] == "response" and first["intact"] is True

    # a retry is answered at once with the same charge
    again, elapsed_again = send(client, body)
    assert answer(again) == answer(response)
    assert approved_id(again) == charge_id
    record = detail(client, body["transaction_id"])
    retry = record["attempts"][1]
    assert retry["kind"] == "replay" and took(retry) < 0.1
    assert record["issued"] == 1


def test_4012_is_late_for_twilio_and_the_retry_gets_the_charge(client):
    """12 s is past the 10 s connector timeout (scaled: 120 ms > 100 ms)."""
    body = card_payload(amount="4012.00")
    response, elapsed = send(client, body)
    charge_id = approved_id(response)
    assert elapsed >= 12 * TEST_SCALE
    again, _ = send(client, body)
    assert approved_id(again) == charge_id
    first, retry = detail(client, body["transaction_id"])["attempts"]
    assert first["late"] is True and retry["late"] is False


def test_4099_99_is_the_longest_delay(fast_client):
    body = card_payload(amount="4099.99")
    response, elapsed = send(fast_client, body)
    approved_id(response)
    assert elapsed >= 99.99 * FAST_SCALE


# -- 4100.00 and 4101.00: hang every attempt ---------------------------------------------------

@pytest.mark.parametrize("amount,charged", [("4100.00", False), ("4101.00", True)])
def test_4100_hangs_every_attempt_and_4101_charges_anyway(fast_client, amount, charged):
    body = card_payload(amount=amount)
    for _ in range(2):
        response, elapsed = send(fast_client, body)
        assert fault_of(response) == "hang"
        assert elapsed >= HANG_SECONDS * FAST_SCALE
    record = detail(fast_client, body["transaction_id"])
    assert [a["delivery"] for a in record["attempts"]] == ["hung", "hung"]
    assert all(a["late"] and not a["intact"] and a["status_code"] is None
               for a in record["attempts"])
    assert all(took(a) >= HANG_SECONDS * FAST_SCALE - 0.001 for a in record["attempts"])
    if charged:
        assert record["status"] == "succeeded" and record["charge_id"].startswith("ch_")
        assert record["issued"] == 1 and record["orphaned"] is True
    else:
        assert record["status"] == "failed" and record["charge_id"] is None
        assert record["issued"] == 0 and record["orphaned"] is False


# -- 4300.00-4307.00: one broken answer each ---------------------------------------------------

BROKEN = ["not_json", "drop", "missing_id", "html", "empty", "truncated", "null_id_no_error",
          "wrong_id_key"]
HTML_200 = (b"<!doctype html><html><head><title>200 OK</title></head><body><h1>OK</h1>"
            b"<p>upstream said no</p></body></html>")


def expect_broken(response, variant: str, result_id: str, key: str = "charge_id") -> None:
    """The exact answer of a broken variant hiding the approval `result_id`."""
    if variant in ("drop", "truncated"):
        assert fault_of(response) == variant
        return
    assert response.status_code == 200, response.get_data()
    other = "token_id" if key == "charge_id" else "charge_id"
    expected = {
        "not_json": (f"{key}={result_id}&error_code=".encode(), "text/plain"),
        "missing_id": (b'{"error_code":null,"error_message":null}', "application/json"),
        "html": (HTML_200, "text/html"),
        "empty": (b"", None),
        "null_id_no_error": (f'{{"{key}":null,"error_code":null,"error_message":null}}'
                             .encode(), "application/json"),
        "wrong_id_key": (f'{{"{other}":"{result_id}","error_code":null,"error_message":null}}'
                         .encode(), "application/json"),
    }[variant]
    assert (response.get_data(), response.mimetype or None) == expected


@pytest.mark.parametrize("offset,variant", list(enumerate(BROKEN)), ids=BROKEN)
def test_4300_range_answers_one_broken_answer_each(client, offset, variant):
    amount = f"{4300 + offset}.00"
    body = card_payload(amount=amount)
    response, _ = send(client, body)
    record = detail(client, body["transaction_id"])
    # the charge went through: only the answer is broken
    assert record["status"] == "succeeded" and record["charge_id"].startswith("ch_")
    expect_broken(response, variant, record["charge_id"])
    attempt = record["attempts"][0]
    assert attempt["intact"] is False
    assert attempt["delivery"] == ("dropped" if variant == "drop" else "response")
    assert f"magic:amount={amount}" in attempt["rules"]
    if variant == "truncated":
        assert attempt["status_code"] == 200
    # no attempt carried the charge id back to Twilio: an orphan (an answer that is not
    # intact does not count as heard, like a dropped one)
    assert record["orphaned"] is True


def test_broken_answers_break_every_attempt(client):
    body = card_payload(amount="4302.00")
    first, _ = send(client, body)
    again, _ = send(client, body)
    assert again.get_data() == first.get_data() == b'{"error_code":null,"error_message":null}'
    record = detail(client, body["transaction_id"])
    assert record["issued"] == 1 and [a["intact"] for a in record["attempts"]] == [False, False]


def test_connection_faults_on_a_real_socket(app):
    """Over real HTTP, drop and hang close the connection unanswered and truncated stops
    short of its Content-Length."""
    with LiveServer(app) as live:
        for amount in ("4301.00", "4305.00"):
            with pytest.raises(requests.exceptions.RequestException):
                requests.post(live.url, json=card_payload(amount=amount), timeout=5)
        with pytest.raises(requests.exceptions.RequestException):
            requests.post(live.url, json=scenario("hang"), timeout=5)  # 650 ms at 0.01
        assert requests.post(live.url, json=card_payload(), timeout=5).json()["charge_id"]


# -- 4400.00-4599.99: HTTP statuses ------------------------------------------------------------

@pytest.mark.parametrize("amount,status", [("4400.00", 400), ("4429.00", 429),
                                           ("4500.50", 500), ("4503.00", 503),
                                           ("4599.99", 599)])
def test_4400_range_answers_the_http_status(client, amount, status):
    body = card_payload(amount=amount)
    for _ in range(2):  # every attempt
        response, _ = send(client, body)
        assert response.status_code == status
        assert response.get_data().startswith(f"{status} ".encode())
    record = detail(client, body["transaction_id"])
    assert record["status"] == "failed" and record["charge_id"] is None
    assert record["issued"] == 0
    assert [a["status_code"] for a in record["attempts"]] == [status, status]
    assert [a["kind"] for a in record["attempts"]] == ["fault", "fault"]


# -- cvv 000 and postal code 00000, charge and tokenize ----------------------------------------

@pytest.mark.parametrize("overrides,code", [
    ({"cvv": "000"}, "incorrect_cvc"),
    ({"postal_code": "00000"}, "incorrect_zip"),
    ({"cvv": "000", "cardnumber": "378282246310005"}, "incorrect_cvc"),  # not invalid_cvc
    ({"cvv": "000", "cardnumber": LIVE_VISA}, "incorrect_cvc"),  # not test_mode_live_card
    ({"postal_code": "00000", "cardnumber": LIVE_VISA}, "incorrect_zip"),
])
@pytest.mark.parametrize("method", ["charge", "tokenize"])
def test_cvv_000_and_postal_code_00000_decline(client, method, overrides, code):
    body = card_payload(**overrides) if method == "charge" else tokenize(**overrides)
    key = "charge_id" if method == "charge" else "token_id"
    response, _ = send(client, body)
    assert answer(response) == decline(code, key)
    assert detail(client, body["transaction_id"])["status"] == "declined"


def test_a_plain_tokenize_is_not_touched_by_magic(client):
    body = tokenize(cvv="001", postal_code="00001")
    response, _ = send(client, body)
    assert approved_id(response, "token_id").startswith("tok_")
    assert detail(client, body["transaction_id"])["attempts"][0]["rules"] == []


# -- fakeproc_scenario -------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["charge", "tokenize"])
@pytest.mark.parametrize("code", ["insufficient_funds", "do_not_honor", "call_issuer_42"])
def test_scenario_decline_step(client, method, code):
    body = scenario(f"decline:{code}", method=method)
    if method == "tokenize":
        body.pop("amount")
    key = "charge_id" if method == "charge" else "token_id"
    response, _ = send(client, body)
    body_out = answer(response)
    assert body_out[key] is None and body_out["error_code"] == code
    assert body_out["error_message"] == DECLINE_MESSAGES.get(code, "The payment was declined.")
    record = detail(client, body["transaction_id"])
    assert record["attempts"][0]["rules"] == [f"magic:scenario=decline:{code}"]


def test_scenario_approve_step_approves_even_a_live_card(client):
    response, _ = send(client, scenario("approve", cardnumber=LIVE_VISA))
    approved_id(response)


def test_scenario_delay_step_delays_only_the_first_attempt(client):
    body = scenario("delay:20")
    response, elapsed = send(client, body)
    charge_id = approved_id(response)
    assert elapsed >= 20 * TEST_SCALE
    again, _ = send(client, body)
    assert approved_id(again) == charge_id
    first, retry = detail(client, body["transaction_id"])["attempts"]
    assert took(first) >= 20 * TEST_SCALE - 0.001 and took(retry) < 0.1


def test_scenario_delay_accepts_fractions_and_tokenize(client):
    body = tokenize(parameters={SCENARIO: "delay:2.5"})
    response, elapsed = send(client, body)
    approved_id(response, "token_id")
    assert elapsed >= 2.5 * TEST_SCALE


@pytest.mark.parametrize("step,charged", [("hang", False), ("hang_charge", True)])
def test_scenario_hang_steps_hang_every_attempt(fast_client, step, charged):
    body = scenario(step)
    for _ in range(2):
        response, elapsed = send(fast_client, body)
        assert fault_of(response) == "hang" and elapsed >= HANG_SECONDS * FAST_SCALE
    record = detail(fast_client, body["transaction_id"])
    assert [a["delivery"] for a in record["attempts"]] == ["hung", "hung"]
    assert (record["status"], record["issued"], record["orphaned"]) == (
        ("succeeded", 1, True) if charged else ("failed", 0, False))


def test_scenario_drop_step_drops_every_attempt(client):
    body = scenario("drop")
    for _ in range(2):
        response, _ = send(client, body)
        assert fault_of(response) == "drop"
    record = detail(client, body["transaction_id"])
    assert [a["delivery"] for a in record["attempts"]] == ["dropped", "dropped"]
    assert record["status"] == "succeeded" and record["issued"] == 1
    assert record["orphaned"] is True


@pytest.mark.parametrize("status", [400, 402, 429, 500, 503, 599])
def test_scenario_http_step_answers_the_status_every_attempt(client, status):
    body = scenario(f"http:{status}")
    for _ in range(2):
        response, _ = send(client, body)
        assert response.status_code == status
    record = detail(client, body["transaction_id"])
    assert record["status"] == "failed" and record["issued"] == 0


MALFORMED = ["not_json", "html", "empty", "missing_id", "null_id_no_error", "wrong_id_key",
             "truncated"]


@pytest.mark.parametrize("method", ["charge", "tokenize"])
@pytest.mark.parametrize("variant", MALFORMED)
def test_scenario_malformed_step_every_variant(client, variant, method):
    body = scenario(f"malformed:{variant}", method=method)
    key = "charge_id"
    if method == "tokenize":
        body.pop("amount")
        key = "token_id"
    responses = [send(client, body)[0] for _ in range(2)]
    record = detail(client, body["transaction_id"])
    assert record["status"] == "succeeded" and record["issued"] == 1
    for response in responses:  # every attempt, the same charge behind it
        expect_broken(response, variant, record[key], key)
    assert [a["intact"] for a in record["attempts"]] == [False, False]


def test_scenario_steps_combine_delay_then_decline(client):
    body = scenario("delay:5;decline:insufficient_funds")
    response, elapsed = send(client, body)
    assert answer(response) == decline("insufficient_funds")
    assert elapsed >= 5 * TEST_SCALE


def test_scenario_steps_combine_delay_then_broken_answer(client):
    body = scenario(" delay:5 ; http:503 ")
    response, elapsed = send(client, body)
    assert response.status_code == 503 and elapsed >= 5 * TEST_SCALE


@pytest.mark.parametrize("script,named", [
    ("explode", "explode"),
    ("approve;explode:now", "explode:now"),
    ("malformed:xml", "malformed:xml"),
    ("http:200", "http:200"),
    ("http:abc", "http:abc"),
    ("delay:soon", "delay:soon"),
    ("delay:-1", "delay:-1"),
    ("decline:Not A Code", "decline:Not A Code"),
    ("hang:5", "hang:5"),
])
@pytest.mark.parametrize("method", ["charge", "tokenize"])
def test_an_unknown_scenario_step_is_400_naming_it(client, script, named, method):
    body = scenario(script, method=method)
    if method == "tokenize":
        body.pop("amount")
    key = "charge_id" if method == "charge" else "token_id"
    response, _ = send(client, body)
    assert response.status_code == 400
    assert response.json[key] is None and response.json["error_code"] == "invalid_request"
    assert named in response.json["error_message"]
    assert SCENARIO in response.json["error_message"]
    # nothing was recorded
    assert client.get(f"/api/transactions/{body['transaction_id']}").status_code == 404


def test_an_unknown_step_without_argument_is_named_as_sent(client):
    response, _ = send(client, scenario("approve;explode"))
    assert "step explode is not understood" in response.json["error_message"]


# -- precedence --------------------------------------------------------------------------------

def set_magic(client, on: bool, connector: str = "Default") -> None:
    response = client.patch(f"/api/connectors/{connector}", json={"magic_values": on})
    assert response.status_code == 200 and response.json["magic_values"] is on


@pytest.mark.parametrize("overrides", [
    {"amount": "2001.00"}, {"amount": "3000.00"}, {"amount": "4429.00"},
    {"amount": "4300.00"}, {"amount": "4100.00"}, {"cvv": "000"}, {"postal_code": "00000"},
    {"parameters": {SCENARIO: "decline:lost_card"}},
    {"parameters": {SCENARIO: "not a step"}},  # not even parsed
], ids=lambda o: json.dumps(o))
def test_magic_values_are_off_when_the_connector_says_so(client, overrides):
    set_magic(client, False)
    body = card_payload(**overrides)
    response, elapsed = send(client, body)
    approved_id(response)
    assert detail(client, body["transaction_id"])["attempts"][0]["rules"] == []


def test_magic_values_switch_per_connector_and_back(client):
    assert client.post("/api/connectors", json={"unique_name": "Plain",
                                                 "magic_values": False}).status_code == 201
    magic, plain = card_payload(amount="2001.00"), card_payload(amount="2001.00")
    assert answer(send(client, magic)[0])["error_code"] == "insufficient_funds"
    approved_id(send(client, plain, "/connectors/Plain/")[0])
    set_magic(client, True, "Plain")
    assert answer(send(client, card_payload(amount="2001.00"), "/connectors/Plain/")[0])[
        "error_code"] == "insufficient_funds"
    set_magic(client, False)
    approved_id(send(client, card_payload(amount="2001.00"))[0])


def add_rule(client, action: dict[str, Any], **match: Any) -> int:
    response = client.post("/api/rules", json={"match": match, "action": action})
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_an_approve_rule_beats_a_magic_decline(client):
    rule = add_rule(client, {"type": "approve"}, amount="2001.00")
    body = card_payload(amount="2001.00")
    approved_id(send(client, body)[0])
    assert f"rule:{rule}" in detail(client, body["transaction_id"])["attempts"][0]["rules"]


def test_a_decline_rule_beats_a_magic_decline(client):
    add_rule(client, {"type": "decline", "error_code": "rule_said_no"}, amount="2001.00")
    body = answer(send(client, card_payload(amount="2001.00"))[0])
    assert body["error_code"] == "rule_said_no"


def test_a_delay_rule_and_a_magic_decline_combine(client):
    """Delivery and outcome are separate slots: the rule's delay, then the magic decline."""
    rule = add_rule(client, {"type": "delay", "seconds": 10}, amount="2001.00")
    body = card_payload(amount="2001.00")
    response, elapsed = send(client, body)
    assert answer(response) == decline("insufficient_funds")
    assert elapsed >= 10 * TEST_SCALE
    fired = detail(client, body["transaction_id"])["attempts"][0]["rules"]
    assert f"rule:{rule}" in fired and "magic:amount=2001.00" in fired


def test_a_magic_delay_and_a_decline_rule_combine(client):
    add_rule(client, {"type": "decline", "error_code": "rule_said_no"}, amount="4005.00")
    response, elapsed = send(client, card_payload(amount="4005.00"))
    assert answer(response)["error_code"] == "rule_said_no"
    assert elapsed >= 5 * TEST_SCALE


@pytest.mark.parametrize("action,check", [
    ({"type": "http_error", "status": 503}, lambda r: r.status_code == 503),
    ({"type": "malformed", "variant": "empty"},
     lambda r: r.status_code == 200 and r.get_data() == b""),
    ({"type": "drop"}, lambda r: fault_of(r) == "drop"),
], ids=["http_error", "malformed", "drop"])
def test_a_delivery_rule_beats_a_magic_delivery(client, action, check):
    add_rule(client, action, amount="4429.00")
    response, _ = send(client, card_payload(amount="4429.00"))
    assert check(response), (response.status_code, response.get_data())


def test_a_rule_beats_a_scenario(client):
    add_rule(client, {"type": "approve"}, parameters={SCENARIO: "decline:lost_card"})
    approved_id(send(client, scenario("decline:lost_card"))[0])


@pytest.mark.parametrize("cardnumber", [LIVE_VISA, LUHN_INVALID])
def test_a_magic_delay_beats_the_test_mode_checks(client, cardnumber):
    """4012.00 on a card test mode refuses still approves, after the delay."""
    body = card_payload(amount="4012.00", cardnumber=cardnumber)
    response, elapsed = send(client, body)
    approved_id(response)
    assert elapsed >= 12 * TEST_SCALE
    assert detail(client, body["transaction_id"])["status"] == "succeeded"


@pytest.mark.parametrize("overrides,code", [
    ({"amount": "2001.00", "cardnumber": LIVE_VISA}, "insufficient_funds"),
    ({"amount": "2046.00", "cardnumber": LUHN_INVALID}, "card_declined"),
    ({"amount": "3000.00", "expiry_month": "13"}, "processing_error"),
])
def test_a_magic_decline_beats_the_test_mode_checks(client, overrides, code):
    assert answer(send(client, card_payload(**overrides))[0]) == decline(code)


def test_a_magic_broken_answer_hides_an_approval_of_a_live_card(client):
    body = card_payload(amount="4302.00", cardnumber=LIVE_VISA)
    send(client, body)
    assert detail(client, body["transaction_id"])["status"] == "succeeded"


def test_an_ach_charge_obeys_amount_magic(client):
    body = ach_payload(amount="2012.00")
    assert answer(send(client, body)[0]) == decline("lost_card")


@pytest.mark.parametrize("body", [card_payload(amount="4001.50"), card_payload(amount="4300.00"),
                                  scenario("delay:1;decline:insufficient_funds")],
                         ids=["delay", "broken", "scenario"])
def test_an_attempt_names_each_magic_value_once(client, body):
    send(client, body)
    fired = detail(client, body["transaction_id"])["attempts"][0]["rules"]
    assert len(fired) == len(set(fired)) == 1, fired
