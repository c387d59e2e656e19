"""Two `fakeproc serve` processes on one database (SQLite file, PostgreSQL) keep SPEC §2:
one charge per transaction, identical answers, and in-flight retries across processes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import card_payload, post_concurrently, two_serve_processes, wait_in_flight

pytestmark = pytest.mark.slow


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def two_servers(request, tmp_path_factory):
    """Two `fakeproc serve` processes started together on one new database: the migration
    lock must let exactly one of them build the schema."""
    with two_serve_processes(request.param, tmp_path_factory.mktemp(request.param)) as pair:
        yield pair


def test_both_processes_start_on_a_new_database(two_servers):
    for process in two_servers:
        assert requests.get(process.url + "/api/connectors/Default", timeout=30).ok


def test_twenty_duplicates_spread_over_two_processes_make_one_charge(two_servers):
    first, second = two_servers
    body = card_payload()
    answers = post_concurrently([(first.url + "/", body), (second.url + "/", body)] * 10)
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1
    record = requests.get(f"{second.url}/api/transactions/{body['transaction_id']}",
                          timeout=30).json()
    assert record["issued"] == 1
    assert sorted(a["number"] for a in record["attempts"]) == list(range(1, 21))


def test_a_retry_on_the_other_process_waits_for_the_first(two_servers):
    first, second = two_servers
    body = card_payload(amount="4030.00")  # 30 s of configured time: 300 ms here
    with ThreadPoolExecutor(max_workers=1) as pool:
        original = pool.submit(requests.post, first.url + "/", json=body, timeout=30)
        wait_in_flight(second.url, body["transaction_id"])
        retry = requests.post(second.url + "/", json=body, timeout=30)
        assert retry.json() == original.result().json()
    assert retry.json()["charge_id"].startswith("ch_")
    record = requests.get(f"{first.url}/api/transactions/{body['transaction_id']}",
                          timeout=30).json()
    assert record["issued"] == 1 and [a["kind"] for a in record["attempts"]] == [
        "original", "replay"]


def test_a_fault_armed_for_the_next_payment_holds_its_retry_on_the_other_process(two_servers):
    first, second = two_servers
    _arm(first.url, {"action": {"type": "http_error", "status": 503}, "remaining": 1})
    body = card_payload()
    try:
        assert requests.post(first.url + "/", json=body, timeout=30).status_code == 503
        assert requests.post(second.url + "/", json=body, timeout=30).status_code == 503
        assert requests.post(second.url + "/", json=card_payload(), timeout=30).ok
    finally:
        requests.post(first.url + "/api/reset", json={"rules": True}, timeout=30)


def test_the_next_two_payments_across_processes_are_exactly_two(two_servers):
    """Five payments, each sent four times at once over both processes: two of them get the
    503 on every attempt, the other three never."""
    first, second = two_servers
    rule = _arm(first.url, {"action": {"type": "http_error", "status": 503}, "remaining": 2})
    bodies = [card_payload() for _ in range(5)]
    sends = [(server.url + "/", body) for body in bodies for server in (first, second)] * 2
    try:
        answers = post_concurrently(sends)
        by_payment: dict[str, list[int]] = {}
        for (_, body), answer in zip(sends, answers, strict=True):
            by_payment.setdefault(body["transaction_id"], []).append(answer.status_code)
        assert sorted(tuple(sorted(codes)) for codes in by_payment.values()) == [
            (200,) * 4] * 3 + [(503,) * 4] * 2, by_payment
        after = requests.get(f"{second.url}/api/rules/{rule['id']}", timeout=30).json()
        assert (after["remaining"], after["fired"]) == (0, 2)
    finally:
        requests.post(first.url + "/api/reset", json={"rules": True}, timeout=30)


def _arm(url: str, rule: dict) -> dict:
    response = requests.post(url + "/api/rules", json=rule, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()
