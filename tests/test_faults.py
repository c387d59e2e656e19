"""SPEC §3 (faults on demand), seen from the client's side of a real socket: every rule action,
what each one puts on the wire, what the attempt log records, a Twilio-style client that times
out and retries, exact counting under concurrency (one process, two processes on SQLite, two on
PostgreSQL), and rule lifetimes (probability, enabled, priority) on originals and replays."""

from __future__ import annotations

import json
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from conftest import (
    TEST_SCALE,
    ServeGroup,
    ServeProcess,
    card_payload,
    post_concurrently,
    two_serve_processes,
)

pytestmark = pytest.mark.slow

TIMEOUT = 10 * TEST_SCALE  # Twilio's 10 s connector timeout, scaled: 100 ms
TWILIO_RETRIES = 5  # "Twilio will retry the request up to 5 times"
API_TIMEOUT = 30


# -- servers ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def proc(tmp_path_factory: pytest.TempPathFactory, template_db: Path) -> Iterator[ServeProcess]:
    """One `fakeproc serve` process (gunicorn + gevent) on its own SQLite file, for the module."""
    log_dir = tmp_path_factory.mktemp("faults")
    database = log_dir / "fakeproc.db"
    shutil.copy(template_db, database)
    group = ServeGroup(log_dir)
    try:
        yield group(f"sqlite:///{database}")[0]
    finally:
        group.stop()


@pytest.fixture(params=["serve", "thread"])
def target(request: pytest.FixtureRequest, proc: ServeProcess) -> Any:
    """Connection faults must work on both servers that hand fakeproc the client socket:
    gunicorn (`fakeproc serve`) and Werkzeug's threaded server (the in-process `server`)."""
    return proc if request.param == "serve" else request.getfixturevalue("server")


class Rules:
    """Arms rules through the control API and removes them when the test ends."""

    def __init__(self) -> None:
        self.created: list[tuple[str, int]] = []

    def add(self, base: str, **rule: Any) -> dict[str, Any]:
        response = requests.post(f"{base}/api/rules", json=rule, timeout=API_TIMEOUT)
        assert response.status_code == 201, response.text
        created = response.json()
        self.created.append((base, created["id"]))
        return created

    def get(self, base: str, rule_id: int) -> dict[str, Any]:
        response = requests.get(f"{base}/api/rules/{rule_id}", timeout=API_TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()

    def remove_all(self) -> None:
        for base, rule_id in self.created:
            try:
                requests.delete(f"{base}/api/rules/{rule_id}", timeout=API_TIMEOUT)
            except requests.ConnectionError:  # that server is already gone
                pass


@pytest.fixture
def rules() -> Iterator[Rules]:
    armed = Rules()
    yield armed
    armed.remove_all()


# -- reading the ledger ----------------------------------------------------------------------

def detail(base: str, transaction_id: str) -> dict[str, Any]:
    response = requests.get(f"{base}/api/transactions/{transaction_id}", timeout=API_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(base: str, transaction_id: str, done: Callable[[dict[str, Any]], bool],
             timeout: float = 10.0) -> dict[str, Any]:
    """Poll the transaction until `done(record)`; the bounded wait replaces fixed sleeps."""
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = requests.get(f"{base}/api/transactions/{transaction_id}",
                                timeout=API_TIMEOUT)
        if response.status_code == 200:
            record = response.json()
            if done(record):
                return record
        time.sleep(0.02)
    raise AssertionError(f"{transaction_id} never reached the expected state: {record}")


def all_closed(count: int) -> Callable[[dict[str, Any]], bool]:
    """`count` attempts, every one of them ended (answered, hung up or dropped)."""
    return lambda record: (len(record["attempts"]) == count
                           and all(a["delivery"] is not None for a in record["attempts"]))


def settled(base: str, transaction_id: str, count: int = 1) -> dict[str, Any]:
    return wait_for(base, transaction_id, all_closed(count))


# -- the client side -------------------------------------------------------------------------

@dataclass
class Raw:
    """What a raw socket saw: every byte before the server closed, and when it closed."""

    data: bytes
    elapsed: float
    reset: bool = False

    @property
    def head(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[0]

    @property
    def body(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[2]

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.decode("latin-1").partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


def raw_post(base: str, body: dict[str, Any], limit: float = 10.0) -> Raw:
    """POST over a bare socket and read until the server closes it (EOF)."""
    url = urlsplit(base)
    payload = json.dumps(body).encode()
    request = (f"POST / HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode() + payload
    received, reset = b"", False
    with socket.create_connection((url.hostname, url.port), timeout=limit) as client:
        started = time.monotonic()
        client.sendall(request)
        try:
            while chunk := client.recv(65536):
                received += chunk
        except ConnectionResetError:
            reset = True
        elapsed = time.monotonic() - started
    return Raw(received, elapsed, reset)


def well_formed(response: requests.Response) -> dict[str, Any] | None:
    """The answer Twilio can use: 200, a JSON object with `charge_id`, and either an id or an
    error code."""
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or "charge_id" not in body:
        return None
    approved = isinstance(body["charge_id"], str) and body.get("error_code") is None
    declined = body["charge_id"] is None and isinstance(body.get("error_code"), str)
    return body if approved or declined else None


@dataclass
class Exchange:
    """One Twilio-style charge: what each attempt saw, and the answer it ended with."""

    seen: list[str] = field(default_factory=list)
    answer: dict[str, Any] | None = None


def twilio_charge(base: str, body: dict[str, Any], timeout: float = TIMEOUT,
                  retries: int = TWILIO_RETRIES) -> Exchange:
    """Twilio's side of a charge: a 10 s (scaled) timeout per attempt, then a retry with the
    same transaction_id, up to 5 retries, stopping at the first well-formed answer."""
    exchange = Exchange()
    for _ in range(1 + retries):
        try:
            response = requests.post(base + "/", json=body, timeout=timeout)
        except requests.Timeout:
            exchange.seen.append("timeout")
            continue
        except requests.ConnectionError:
            exchange.seen.append("connection error")
            continue
        exchange.answer = well_formed(response)
        if exchange.answer is not None:
            exchange.seen.append("answer")
            return exchange
        exchange.seen.append(f"broken {response.status_code}")
    return exchange


def post(base: str, body: dict[str, Any], timeout: float = API_TIMEOUT) -> requests.Response:
    return requests.post(base + "/", json=body, timeout=timeout)


def only_attempt(record: dict[str, Any]) -> dict[str, Any]:
    assert len(record["attempts"]) == 1, record["attempts"]
    return record["attempts"][0]


# -- 1. every action, as the client sees it --------------------------------------------------

def test_approve_overrides_the_test_mode_checks(proc, rules):
    body = card_payload(cardnumber="4242424242424242")  # Luhn-valid, not a TEST-mode card
    rule = rules.add(proc.url, match={"transaction_id": body["transaction_id"]},
                     action={"type": "approve"})
    response = post(proc.url, body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["charge_id"].startswith("ch_") and len(answer["charge_id"]) == 35
    assert answer["error_code"] is None and answer["error_message"] is None
    record = detail(proc.url, body["transaction_id"])
    assert record["status"] == "succeeded" and record["charge_id"] == answer["charge_id"]
    attempt = only_attempt(record)
    assert attempt["delivery"] == "response" and attempt["status_code"] == 200
    assert attempt["intact"] is True and attempt["late"] is False
    assert attempt["rules"] == [f"rule:{rule['id']}"]


def test_decline_answers_its_code_and_message_with_a_null_id(proc, rules):
    body = card_payload()
    rule = rules.add(proc.url, match={"transaction_id": body["transaction_id"]},
                     action={"type": "decline", "error_code": "insufficient_funds",
                             "error_message": "Not today."})
    response = post(proc.url, body)
    assert response.status_code == 200
    assert response.json() == {"charge_id": None, "error_code": "insufficient_funds",
                               "error_message": "Not today."}
    record = detail(proc.url, body["transaction_id"])
    assert record["status"] == "declined" and record["issued"] == 0
    attempt = only_attempt(record)
    assert attempt["delivery"] == "response" and attempt["intact"] is True
    assert attempt["rules"] == [f"rule:{rule['id']}"]


def test_decline_without_a_message_gets_a_standard_one(proc, rules):
    body = card_payload()
    rules.add(proc.url, match={"transaction_id": body["transaction_id"]},
              action={"type": "decline", "error_code": "card_declined"})
    answer = post(proc.url, body).json()
    assert answer["charge_id"] is None and answer["error_code"] == "card_declined"
    assert isinstance(answer["error_message"], str) and answer["error_message"]


@pytest.mark.parametrize("outcome, expected", [
    (None, {"error_code": None}),
    ({"type": "decline", "error_code": "do_not_honor"}, {"charge_id": None,
                                                          "error_code": "do_not_honor"}),
])
def test_delay_answers_after_the_scaled_delay(proc, rules, outcome, expected):
    body = card_payload()
    action: dict[str, Any] = {"type": "delay", "seconds": 3}  # 30 ms at this time scale
    if outcome:
        action["outcome"] = outcome
    rule = rules.add(proc.url, match={"transaction_id": body["transaction_id"]}, action=action)
    started = time.monotonic()
    response = post(proc.url, body)
    elapsed = time.monotonic() - started
    assert elapsed >= 3 * TEST_SCALE
    assert response.status_code == 200
    answer = response.json()
    assert answer.items() >= expected.items()
    if outcome is None:
        assert answer["charge_id"].startswith("ch_")
    attempt = only_attempt(detail(proc.url, body["transaction_id"]))
    assert attempt["delivery"] == "response" and attempt["intact"] is True
    assert attempt["late"] is False  # 30 ms is within the 100 ms timeout
    assert attempt["rules"] == [f"rule:{rule['id']}"]


def test_hang_holds_the_connection_then_closes_without_a_byte(target, rules):
    body = card_payload()
    rule = rules.add(target.url, match={"transaction_id": body["transaction_id"]},
                     action={"type": "hang", "seconds": 30})  # 300 ms here
    with pytest.raises(requests.ReadTimeout):
        post(target.url, body, timeout=TIMEOUT)
    raw = raw_post(target.url, body)  # a retry: the hang applies to every attempt
    assert raw.data == b"" and raw.reset is False  # a clean close (EOF), nothing sent
    assert raw.elapsed >= 30 * TEST_SCALE
    record = settled(target.url, body["transaction_id"], 2)
    assert record["status"] == "failed" and record["issued"] == 0
    assert record["charge_id"] is None and record["orphaned"] is False
    for attempt in record["attempts"]:
        assert attempt["delivery"] == "hung" and attempt["status_code"] is None
        assert attempt["intact"] is False and attempt["late"] is True
        assert attempt["rules"] == [f"rule:{rule['id']}"]


def test_drop_closes_the_connection_without_a_byte(target, rules):
    body = card_payload()
    rule = rules.add(target.url, match={"transaction_id": body["transaction_id"]},
                     action={"type": "drop"})
    raw = raw_post(target.url, body)
    assert raw.data == b"" and raw.reset is False  # a clean close (EOF), nothing sent
    assert raw.elapsed < TIMEOUT * 5  # at once, not after a hang
    with pytest.raises(requests.ConnectionError) as caught:
        post(target.url, body)
    assert not isinstance(caught.value, requests.Timeout)
    record = settled(target.url, body["transaction_id"], 2)
    # drop charges by default: the money is taken and nobody heard about it.
    assert record["status"] == "succeeded" and record["issued"] == 1
    assert record["orphaned"] is True
    first, second = record["attempts"]
    assert first["result_id"] == record["charge_id"] == second["result_id"]
    assert second["kind"] == "replay"
    for attempt in record["attempts"]:
        assert attempt["delivery"] == "dropped" and attempt["status_code"] is None
        assert attempt["intact"] is False
        assert attempt["rules"] == [f"rule:{rule['id']}"]


@pytest.mark.parametrize("custom, expected_body", [
    (None, b"503 Service Unavailable"),
    ("upstream exploded \u2603", "upstream exploded \u2603".encode()),
])
def test_http_error_answers_its_status_and_body(proc, rules, custom, expected_body):
    body = card_payload()
    action: dict[str, Any] = {"type": "http_error", "status": 503}
    if custom is not None:
        action["body"] = custom
    rule = rules.add(proc.url, match={"transaction_id": body["transaction_id"]}, action=action)
    response = post(proc.url, body)
    assert response.status_code == 503
    assert response.content == expected_body
    assert response.headers["Content-Type"].startswith("text/plain")
    record = detail(proc.url, body["transaction_id"])
    # http_error charges nothing by default: the transaction is left undecided.
    assert record["issued"] == 0 and record["status"] == "failed"
    attempt = only_attempt(record)
    assert attempt["delivery"] == "response" and attempt["status_code"] == 503
    assert attempt["intact"] is False
    assert attempt["response_body"] == expected_body.decode()
    assert attempt["rules"] == [f"rule:{rule['id']}"]


def _expected_malformed(variant: str, charge_id: str) -> tuple[bytes, str | None]:
    """The exact body and Content-Type of each whole-body variant of an approved charge."""
    return {
        "not_json": (f"charge_id={charge_id}&error_code=".encode(), "text/plain"),
        "html": (b"<!doctype html><html><head><title>200 OK</title></head><body><h1>OK</h1>"
                 b"<p>upstream said no</p></body></html>", "text/html"),
        "empty": (b"", None),
        "missing_id": (b'{"error_code":null,"error_message":null}', "application/json"),
        "null_id_no_error": (b'{"charge_id":null,"error_code":null,"error_message":null}',
                             "application/json"),
        "wrong_id_key": (f'{{"token_id":"{charge_id}","error_code":null,'
                         f'"error_message":null}}'.encode(), "application/json"),
    }[variant]


@pytest.mark.parametrize("variant", ["not_json", "html", "empty", "missing_id",
                                     "null_id_no_error", "wrong_id_key"])
def test_malformed_answers_the_exact_broken_body(proc, rules, variant):
    body = card_payload()
    rule = rules.add(proc.url, match={"transaction_id": body["transaction_id"]},
                     action={"type": "malformed", "variant": variant})
    response = post(proc.url, body)
    record = detail(proc.url, body["transaction_id"])
    # malformed charges by default: the charge exists, the answer does not carry it.
    assert record["status"] == "succeeded" and record["issued"] == 1
    charge_id = record["charge_id"]
    assert charge_id.startswith("ch_")
    expected, content_type = _expected_malformed(variant, charge_id)
    assert response.status_code == 200
    assert response.content == expected
    if content_type is None:
        assert "Content-Type" not in response.headers
    else:
        assert response.headers["Content-Type"].startswith(content_type)
    assert well_formed(response) is None
    attempt = only_attempt(record)
    assert attempt["delivery"] == "response" and attempt["status_code"] == 200
    assert attempt["intact"] is False and attempt["result_id"] == charge_id
    assert attempt["response_body"] == expected.decode()
    assert attempt["rules"] == [f"rule:{rule['id']}"]
    assert record["orphaned"] is True  # charged, and no attempt carried the charge_id


def test_malformed_truncated_stops_short_of_its_content_length(target, rules):
    body = card_payload()
    rule = rules.add(target.url, match={"transaction_id": body["transaction_id"]},
                     action={"type": "malformed", "variant": "truncated"})
    raw = raw_post(target.url, body)
    assert raw.head.startswith(b"HTTP/1.1 200 ")
    declared = int(raw.header("Content-Length") or -1)
    assert declared > len(raw.body) > 0
    record = settled(target.url, body["transaction_id"])
    proper = json.dumps({"charge_id": record["charge_id"], "error_code": None,
                         "error_message": None}, separators=(",", ":")).encode()
    assert proper.startswith(raw.body) and len(raw.body) < len(proper)
    attempt = only_attempt(record)
    assert attempt["delivery"] == "response" and attempt["intact"] is False
    assert attempt["rules"] == [f"rule:{rule['id']}"]
    assert record["issued"] == 1


def test_requests_sees_a_truncated_answer_as_an_error(proc, rules):
    body = card_payload()
    rules.add(proc.url, match={"transaction_id": body["transaction_id"]},
              action={"type": "malformed", "variant": "truncated"})
    with pytest.raises(requests.exceptions.RequestException):
        post(proc.url, body)


@pytest.mark.parametrize("variant, status, expected", [
    ("html", 502, b"<!doctype html><html><head><title>502 Bad Gateway</title></head>"
                  b"<body><h1>Bad Gateway</h1><p>upstream said no</p></body></html>"),
    ("null_id_no_error", 500, b'{"charge_id":null,"error_code":null,"error_message":null}'),
])
def test_malformed_with_a_custom_status(proc, rules, variant, status, expected):
    body = card_payload()
    rules.add(proc.url, match={"transaction_id": body["transaction_id"]},
              action={"type": "malformed", "variant": variant, "status": status})
    response = post(proc.url, body)
    assert response.status_code == status
    assert response.content == expected
    attempt = only_attempt(detail(proc.url, body["transaction_id"]))
    assert attempt["status_code"] == status and attempt["intact"] is False


@pytest.mark.parametrize("variant", ["missing_id", "null_id_no_error", "wrong_id_key"])
def test_malformed_tokenize_answers_garble_the_token_id(proc, rules, variant):
    body = card_payload(method="tokenize", amount=...)
    rules.add(proc.url, match={"transaction_id": body["transaction_id"]},
              action={"type": "malformed", "variant": variant})
    response = post(proc.url, body)
    token_id = detail(proc.url, body["transaction_id"])["token_id"]
    assert token_id.startswith("tok_")
    expected = {"missing_id": {"error_code": None, "error_message": None},
                "null_id_no_error": {"token_id": None, "error_code": None,
                                     "error_message": None},
                "wrong_id_key": {"charge_id": token_id, "error_code": None,
                                 "error_message": None}}[variant]
    assert response.status_code == 200 and response.json() == expected


@pytest.mark.parametrize("action, answer_keys", [
    ({"type": "approve"}, {"error_code": None}),
    ({"type": "decline", "error_code": "card_declined"}, {"charge_id": None,
                                                          "error_code": "card_declined"}),
    ({"type": "delay", "seconds": 1}, {"error_code": None}),
    ({"type": "delay", "seconds": 1, "outcome": {"type": "decline", "error_code": "fraudulent",
                                                 "parameters": {"reason": "velocity"}}},
     {"charge_id": None, "error_code": "fraudulent"}),
])
def test_rule_parameters_come_back_in_the_answer(proc, rules, action, answer_keys):
    body = card_payload(parameters={"order": "A-17"})
    parameters = {"risk_score": "12", "gateway": "fake"}
    rules.add(proc.url, match={"transaction_id": body["transaction_id"]},
              action={**action, "parameters": parameters})
    first = post(proc.url, body)
    answer = first.json()
    assert answer.items() >= answer_keys.items()
    expected = {**action.get("outcome", {}).get("parameters", {}), **parameters}
    assert answer["parameters"] == expected
    # a replay carries the same parameters
    assert post(proc.url, body).json() == answer


# -- 2. a Twilio-style client: timeouts and retries ------------------------------------------

@pytest.mark.parametrize("armed_by", ["rule", "magic amount"])
def test_a_12s_first_attempt_is_answered_on_the_retry_with_the_original_charge(
        proc, rules, armed_by):
    if armed_by == "rule":
        body = card_payload()
        rules.add(proc.url, match={"transaction_id": body["transaction_id"], "attempt": 1},
                  action={"type": "delay", "seconds": 12})
    else:
        body = card_payload(amount="4012.00")
    exchange = twilio_charge(proc.url, body)
    assert exchange.seen == ["timeout", "answer"]
    assert exchange.answer is not None and exchange.answer["charge_id"].startswith("ch_")
    record = settled(proc.url, body["transaction_id"], 2)
    first, second = record["attempts"]
    assert first["result_id"] == exchange.answer["charge_id"] == record["charge_id"]
    assert first["kind"] == "original" and first["late"] is True
    assert second["kind"] == "replay" and second["late"] is False
    assert second["delivery"] == "response" and second["intact"] is True
    assert record["status"] == "succeeded" and record["issued"] == 1
    assert record["orphaned"] is False


@pytest.mark.parametrize("armed_by", ["rule", "magic amount"])
def test_a_charging_hang_exhausts_the_retries_and_leaves_an_orphan(proc, rules, armed_by):
    if armed_by == "rule":
        body = card_payload()
        rules.add(proc.url, match={"transaction_id": body["transaction_id"]},
                  action={"type": "hang", "charge": True})  # 65 s: 650 ms here
    else:
        body = card_payload(amount="4101.00")
    exchange = twilio_charge(proc.url, body)
    assert exchange.seen == ["timeout"] * 6 and exchange.answer is None
    during = detail(proc.url, body["transaction_id"])
    assert during["attempts"] and any(a["delivery"] is None for a in during["attempts"])
    assert during["orphaned"] is False  # the last hang is still open
    record = settled(proc.url, body["transaction_id"], 6)
    assert [a["number"] for a in record["attempts"]] == list(range(1, 7))
    assert all(a["delivery"] == "hung" and a["late"] for a in record["attempts"])
    assert record["status"] == "succeeded" and record["issued"] == 1
    assert record["charge_id"].startswith("ch_")
    assert record["orphaned"] is True
    orphans = requests.get(f"{proc.url}/api/transactions",
                           params={"orphaned": "true", "transaction_id": body["transaction_id"]},
                           timeout=API_TIMEOUT).json()["data"]
    assert [t["transaction_id"] for t in orphans] == [body["transaction_id"]]


@pytest.mark.parametrize("armed_by", ["rule", "magic amount"])
def test_a_hang_without_charge_exhausts_the_retries_and_fails(proc, rules, armed_by):
    if armed_by == "rule":
        body = card_payload()
        rules.add(proc.url, match={"transaction_id": body["transaction_id"]},
                  action={"type": "hang"})
    else:
        body = card_payload(amount="4100.00")
    exchange = twilio_charge(proc.url, body)
    assert exchange.seen == ["timeout"] * 6 and exchange.answer is None
    assert detail(proc.url, body["transaction_id"])["status"] == "in_flight"
    record = settled(proc.url, body["transaction_id"], 6)
    assert all(a["delivery"] == "hung" for a in record["attempts"])
    assert record["issued"] == 0 and record["charge_id"] is None
    assert record["status"] == "failed" and record["orphaned"] is False


def test_a_hang_on_the_first_attempt_only_is_charged_by_the_retry(proc, rules):
    body = card_payload()
    rules.add(proc.url, match={"transaction_id": body["transaction_id"], "attempt": 1},
              action={"type": "hang", "seconds": 30})
    exchange = twilio_charge(proc.url, body)
    assert exchange.seen == ["timeout", "answer"]
    record = settled(proc.url, body["transaction_id"], 2)
    first, second = record["attempts"]
    assert first["delivery"] == "hung" and first["kind"] == "fault"
    assert second["kind"] == "original" and second["result_id"] == exchange.answer["charge_id"]
    assert record["status"] == "succeeded" and record["issued"] == 1
    assert record["orphaned"] is False


# -- 3. "the next 3": exact counting under concurrency ----------------------------------------

DECLINE_NEXT_3 = {"action": {"type": "decline", "error_code": "card_declined"}, "remaining": 3}
FAIL_NEXT_3 = {"action": {"type": "http_error", "status": 503}, "remaining": 3}


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_processes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  template_db: Path) -> Iterator[list[ServeProcess]]:
    """Two `fakeproc serve` processes sharing one database."""
    log_dir = tmp_path_factory.mktemp(f"two-{request.param}")
    with two_serve_processes(request.param, log_dir, template_db) as processes:
        yield processes


def _next_3(bases: list[str], rules: Rules, rule: dict[str, Any]) -> tuple[int, list, list]:
    """Arm `rule` on the first server, send 12 charges at once spread over `bases`, and check
    the rule's count; returns the rule id, the charges and what the client got (status, body)."""
    armed = rules.add(bases[0], **rule)
    bodies = [card_payload() for _ in range(12)]
    answers = post_concurrently([(bases[i % len(bases)] + "/", body)
                                 for i, body in enumerate(bodies)])
    for base in bases:
        seen = rules.get(base, armed["id"])
        assert (seen["remaining"], seen["fired"], seen["live"]) == (0, 3, False)
    return armed["id"], bodies, [(r.status_code, r.content) for r in answers]


def _check_decline_next_3(bases: list[str], rules: Rules) -> None:
    rule_id, bodies, answers = _next_3(bases, rules, DECLINE_NEXT_3)
    assert {status for status, _ in answers} == {200}
    parsed = [json.loads(content) for _, content in answers]
    declined = [a for a in parsed if a["error_code"] is not None]
    assert len(declined) == 3
    assert all(a["charge_id"] is None and a["error_code"] == "card_declined" for a in declined)
    assert all(a["charge_id"].startswith("ch_") for a in parsed if a["error_code"] is None)
    statuses = [detail(bases[-1], body["transaction_id"])["status"] for body in bodies]
    assert sorted(statuses) == ["declined"] * 3 + ["succeeded"] * 9
    # Decided once: every retry, on any process, replays its transaction's first answer.
    for i, body in enumerate(bodies):
        assert post(bases[(i + 1) % len(bases)], body).content == answers[i][1]
    assert rules.get(bases[0], rule_id)["fired"] == 3
    # Used up: the next charge is approved again.
    assert post(bases[-1], card_payload()).json()["error_code"] is None


def _check_fail_next_3(bases: list[str], rules: Rules) -> None:
    _, bodies, answers = _next_3(bases, rules, FAIL_NEXT_3)
    failed = [i for i, (status, _) in enumerate(answers) if status == 503]
    assert len(failed) == 3
    # Every charge that the rule did not hit is answered properly, and charged.
    for i, (status, content) in enumerate(answers):
        if i in failed:
            assert content == b"503 Service Unavailable"
            continue
        answer = json.loads(content)
        assert status == 200 and answer["error_code"] is None, answer
        assert answer["charge_id"].startswith("ch_"), answer
    statuses = [detail(bases[-1], body["transaction_id"])["status"] for body in bodies]
    assert sorted(statuses) == ["failed"] * 3 + ["succeeded"] * 9


def test_decline_the_next_3_declines_exactly_3_of_12_concurrent_charges(target, rules):
    _check_decline_next_3([target.url], rules)


def test_decline_the_next_3_counts_exactly_across_two_processes(two_processes, rules):
    _check_decline_next_3([process.url for process in two_processes], rules)


def test_fail_the_next_3_hits_exactly_3_of_12_concurrent_charges(target, rules):
    _check_fail_next_3([target.url], rules)


def test_fail_the_next_3_counts_exactly_across_two_processes(two_processes, rules):
    _check_fail_next_3([process.url for process in two_processes], rules)


# -- 4. lifetimes, and delivery rules on replays ---------------------------------------------

def test_a_drop_rule_for_the_first_attempt_drops_the_charge_then_replays_it(proc, rules):
    body = card_payload()
    rule = rules.add(proc.url, match={"transaction_id": body["transaction_id"], "attempt": 1},
                     action={"type": "drop"}, remaining=1)
    with pytest.raises(requests.ConnectionError):
        post(proc.url, body)
    dropped = detail(proc.url, body["transaction_id"])
    assert dropped["status"] == "succeeded" and dropped["issued"] == 1  # charged anyway
    assert dropped["orphaned"] is True
    retry = post(proc.url, body)
    assert retry.status_code == 200
    assert retry.json() == {"charge_id": dropped["charge_id"], "error_code": None,
                            "error_message": None}
    record = detail(proc.url, body["transaction_id"])
    first, second = record["attempts"]
    assert first["delivery"] == "dropped" and first["rules"] == [f"rule:{rule['id']}"]
    assert first["result_id"] == dropped["charge_id"]
    assert second["kind"] == "replay" and second["delivery"] == "response"
    assert second["intact"] is True and second["rules"] == []
    assert record["issued"] == 1 and record["orphaned"] is False
    seen = rules.get(proc.url, rule["id"])
    assert seen["remaining"] == 0 and seen["fired"] == 1


def test_a_delivery_rule_armed_after_the_charge_applies_to_its_replays(proc, rules):
    body = card_payload()
    original = post(proc.url, body).json()
    assert original["charge_id"].startswith("ch_")
    rule = rules.add(proc.url, match={"transaction_id": body["transaction_id"]},
                     action={"type": "http_error", "status": 502}, remaining=1)
    assert post(proc.url, body).status_code == 502
    assert post(proc.url, body).status_code == 502  # it holds the payment it fired on
    assert rules.get(proc.url, rule["id"])["remaining"] == 0
    requests.patch(f"{proc.url}/api/rules/{rule['id']}", json={"enabled": False},
                   timeout=API_TIMEOUT).raise_for_status()
    assert post(proc.url, body).json() == original
    record = detail(proc.url, body["transaction_id"])
    assert [a["kind"] for a in record["attempts"]] == ["original"] + ["replay"] * 3
    assert [a["rules"] for a in record["attempts"]] == [[], *[[f"rule:{rule['id']}"]] * 2, []]
    assert record["issued"] == 1


def test_probability_zero_never_fires(proc, rules):
    marker = uuid.uuid4().hex
    rule = rules.add(proc.url, match={"description_contains": marker}, probability=0,
                     action={"type": "decline", "error_code": "card_declined"})
    delivery = rules.add(proc.url, match={"description_contains": marker}, probability=0,
                         action={"type": "drop"})
    for _ in range(10):
        answer = post(proc.url, card_payload(description=f"order {marker}")).json()
        assert answer["error_code"] is None and answer["charge_id"].startswith("ch_")
    assert rules.get(proc.url, rule["id"])["fired"] == 0
    assert rules.get(proc.url, delivery["id"])["fired"] == 0


def test_a_disabled_rule_never_fires(proc, rules):
    marker = uuid.uuid4().hex
    rule = rules.add(proc.url, match={"description_contains": marker}, enabled=False,
                     action={"type": "decline", "error_code": "card_declined"})
    delivery = rules.add(proc.url, match={"description_contains": marker}, enabled=False,
                         action={"type": "http_error", "status": 500}, remaining=1)
    for _ in range(5):
        response = post(proc.url, card_payload(description=f"order {marker}"))
        assert response.status_code == 200 and response.json()["error_code"] is None
    assert rules.get(proc.url, rule["id"])["fired"] == 0
    seen = rules.get(proc.url, delivery["id"])
    assert seen["fired"] == 0 and seen["remaining"] == 1


def test_the_lower_priority_wins_then_the_older_on_a_tie(proc, rules):
    body = card_payload()
    match = {"transaction_id": body["transaction_id"]}
    late = rules.add(proc.url, match=match, priority=10,
                     action={"type": "decline", "error_code": "lost_card"})
    early = rules.add(proc.url, match=match, priority=5,
                      action={"type": "decline", "error_code": "stolen_card"})
    answer = post(proc.url, body).json()
    assert answer["error_code"] == "stolen_card"
    assert only_attempt(detail(proc.url, body["transaction_id"]))["rules"] == [
        f"rule:{early['id']}"]
    assert rules.get(proc.url, early["id"])["fired"] == 1
    assert rules.get(proc.url, late["id"])["fired"] == 0

    tie = card_payload()
    older = rules.add(proc.url, match={"transaction_id": tie["transaction_id"]}, priority=7,
                      action={"type": "decline", "error_code": "fraudulent"})
    rules.add(proc.url, match={"transaction_id": tie["transaction_id"]}, priority=7,
              action={"type": "decline", "error_code": "do_not_honor"})
    assert post(proc.url, tie).json()["error_code"] == "fraudulent"
    assert only_attempt(detail(proc.url, tie["transaction_id"]))["rules"] == [
        f"rule:{older['id']}"]


def test_the_lower_priority_delivery_rule_wins(proc, rules):
    body = card_payload()
    match = {"transaction_id": body["transaction_id"]}
    rules.add(proc.url, match=match, priority=50, action={"type": "http_error", "status": 500})
    rules.add(proc.url, match=match, priority=-1, action={"type": "http_error", "status": 429})
    assert post(proc.url, body).status_code == 429


@pytest.mark.parametrize("action, first_status, charged", [
    ({"type": "http_error", "status": 500, "charge": True}, 500, True),
    ({"type": "malformed", "variant": "html", "charge": False}, 200, False),
])
def test_the_charge_flag_decides_what_a_retry_after_the_fault_finds(proc, rules, action,
                                                                    first_status, charged):
    body = card_payload()
    rules.add(proc.url, match={"transaction_id": body["transaction_id"], "attempt": 1},
              action=action, remaining=1)
    first = post(proc.url, body)
    assert first.status_code == first_status and well_formed(first) is None
    after_fault = detail(proc.url, body["transaction_id"])
    assert after_fault["issued"] == int(charged)
    assert after_fault["status"] == ("succeeded" if charged else "failed")
    assert after_fault["orphaned"] is charged
    retry = post(proc.url, body).json()
    assert retry["charge_id"].startswith("ch_")
    record = detail(proc.url, body["transaction_id"])
    assert record["issued"] == 1 and record["orphaned"] is False
    assert record["status"] == "succeeded"
    if charged:  # the retry is told about the charge the fault hid
        assert retry["charge_id"] == after_fault["charge_id"]
        assert record["attempts"][1]["kind"] == "replay"
    else:  # nothing was charged: the retry decides
        assert record["attempts"][1]["kind"] == "original"


def test_a_delivery_fault_carries_its_outcome_to_the_replay(proc, rules):
    body = card_payload()
    rules.add(proc.url, match={"transaction_id": body["transaction_id"], "attempt": 1},
              remaining=1,
              action={"type": "drop", "outcome": {"type": "decline", "error_code": "lost_card",
                                                  "error_message": "Reported lost."}})
    with pytest.raises(requests.ConnectionError):
        post(proc.url, body)
    assert post(proc.url, body).json() == {"charge_id": None, "error_code": "lost_card",
                                           "error_message": "Reported lost."}
    record = detail(proc.url, body["transaction_id"])
    assert record["status"] == "declined" and record["issued"] == 0


def test_a_fault_that_charges_nothing_charges_nothing_under_the_reprocess_policy(proc, rules):
    name = f"reprocess-{uuid.uuid4().hex[:8]}"
    # Connection: close, so that the traceback of this expected failure keeps no keep-alive
    # connection open, which would hold up the server's shutdown by its graceful timeout.
    close = {"Connection": "close"}
    created = requests.post(f"{proc.url}/api/connectors", timeout=API_TIMEOUT, headers=close,
                            json={"unique_name": name, "idempotency": "reprocess"})
    assert created.status_code == 201, created.text
    body = card_payload()
    rules.add(proc.url, match={"transaction_id": body["transaction_id"]},
              action={"type": "http_error", "status": 503})  # charge: false (the default)
    for _ in range(3):
        response = requests.post(f"{proc.url}/connectors/{name}/", json=body, headers=close,
                                 timeout=API_TIMEOUT)
        assert response.status_code == 503
    record = detail(proc.url, body["transaction_id"])
    assert [a["result_id"] for a in record["attempts"]] == [None] * 3
    assert record["issued"] == 0 and record["double_charged"] is False
    assert record["status"] == "failed"
