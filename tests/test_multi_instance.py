"""Three `fakeproc serve` processes on one PostgreSQL database under a retry storm (SPEC §2, §3,
§7): each attempt of a transaction goes to another instance, retries arrive while the first
attempt is still held on another instance, and "decline the next N" is counted across them.
Also: a retry waiting on another instance polls the database with a back-off, not a busy loop.

Each instance runs one gevent worker (`--workers 1`): an instance is then one process, so an
attempt sent to another instance is always in another process and must go through the
database (a retry in the same process would be woken in memory), and three single-worker
processes are about what the machine's two cores can run side by side.

The instances run at time scale 0.05 (conftest's servers at 0.01): a 4012.00 first attempt is
held 600 ms, longer than a loaded two-core machine may take to put the storm's first hundred
requests on the wire, so its retries surely arrive while it is held.
"""

from __future__ import annotations

import collections
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from conftest import (
    ServeGroup,
    card_payload,
    make_postgres_database,
    post_concurrently,
    wait_in_flight,
)

# The counting proxy and the poll schedule are the benchmark's (benchmarks/pgwire.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from pgwire import QueryCounter, polls_by_schedule  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

INSTANCES = 3
ATTEMPTS = 5
STORM_DECLINES = 5  # the storm's "decline the next 5", over 12 transactions
TIME_SCALE = 0.05


@pytest.fixture(scope="module")
def database() -> Any:
    url, drop = make_postgres_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture(scope="module")
def instances(database: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Three instances started together on a new database (one of them migrates it)."""
    group = ServeGroup(tmp_path_factory.mktemp("instances"))
    try:
        yield group(database, count=INSTANCES, FAKEPROC_TIME_SCALE=str(TIME_SCALE))
    finally:
        group.stop()


def _get(url: str) -> dict[str, Any]:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _arm(instance: Any, rule: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(instance.url + "/api/rules", json=rule, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# -- the retry storm -----------------------------------------------------------------------------

# name: (transactions, amount, description)
GROUPS = {
    "plain": (30, "10.00", "storm plain"),
    "slow": (12, "4012.00", "storm slow"),        # the first attempt held 600 ms: retries wait
    "magic": (6, "2001.00", "storm magic"),       # declined insufficient_funds, every attempt
    "rule": (12, "10.00", "storm rule"),          # the next 5 of them declined by a rule
}


def _storm(instances: list[Any], bodies: list[dict[str, Any]],
           first: set[int]) -> dict[int, list[tuple]]:
    """Send every attempt of every transaction from a pool of 100 threads: attempt k of
    transaction i to instance (i + k) % 3, so the five attempts cover all three. The
    transactions in `first` go first, each first attempt followed at once by the second, so
    that one of them is held while the other waits for it on another instance however slowly
    the client's threads get going; then the rounds in order, each shuffled."""
    order = random.Random(20261121)
    sends = [(i, attempt, (i + attempt) % INSTANCES) for i in sorted(first) for attempt in (0, 1)]
    for attempt in range(ATTEMPTS):
        batch = [(i, attempt, (i + attempt) % INSTANCES) for i in range(len(bodies))
                 if not (i in first and attempt < 2)]
        order.shuffle(batch)
        sends += batch

    def send(item: tuple[int, int, int]) -> tuple[int, int, int, bytes]:
        i, _, where = item
        response = requests.post(instances[where].url + "/", json=bodies[i], timeout=30,
                                 headers={"User-Agent": f"storm/{where}"})
        return i, where, response.status_code, response.content

    answers: dict[int, list[tuple]] = collections.defaultdict(list)
    with ThreadPoolExecutor(max_workers=100) as pool:
        for i, where, status, content in pool.map(send, sends):
            answers[i].append((where, status, content))
    return answers


def test_a_retry_storm_over_three_instances_charges_each_transaction_once(instances, database):
    rule = _arm(instances[0], {"match": {"description_contains": "storm rule"},
                               "action": {"type": "decline", "error_code": "card_declined"},
                               "remaining": STORM_DECLINES})
    groups, bodies = [], []
    for name, (count, amount, description) in GROUPS.items():
        for _ in range(count):
            groups.append(name)
            bodies.append(card_payload(amount=amount, description=description))

    slow = {i for i, name in enumerate(groups) if name == "slow"}
    answers = _storm(instances, bodies, slow)

    assert sum(len(a) for a in answers.values()) == len(bodies) * ATTEMPTS == 300
    outcome: dict[int, dict[str, Any]] = {}
    for i, replies in answers.items():
        assert {status for _, status, _ in replies} == {200}, replies
        assert len({content for _, _, content in replies}) == 1, (groups[i], replies)
        outcome[i] = json.loads(replies[0][2])

    for i, name in enumerate(groups):
        if name in ("plain", "slow"):
            assert outcome[i]["charge_id"].startswith("ch_"), outcome[i]
        elif name == "magic":
            assert outcome[i]["error_code"] == "insufficient_funds", outcome[i]
    rule_declined = [i for i, name in enumerate(groups)
                     if name == "rule" and outcome[i]["error_code"] == "card_declined"]
    rule_approved = [i for i, name in enumerate(groups)
                     if name == "rule" and outcome[i]["charge_id"]]
    assert len(rule_declined) == STORM_DECLINES
    assert len(rule_approved) == GROUPS["rule"][0] - STORM_DECLINES

    in_flight_elsewhere: dict[int, int] = {}
    timelines: dict[int, list[tuple[Any, ...]]] = {}
    for i, body in enumerate(bodies):
        where = instances[i % INSTANCES]  # read back through any instance
        record = _get(f"{where.url}/api/transactions/{body['transaction_id']}")
        approved = outcome[i]["charge_id"] is not None
        assert record["charge_id"] == outcome[i]["charge_id"]
        assert record["issued"] == int(approved) and not record["double_charged"], record
        numbers = sorted(a["number"] for a in record["attempts"])
        assert numbers == list(range(1, ATTEMPTS + 1)), record["attempts"]
        assert sum(a["kind"] == "original" for a in record["attempts"]) == 1, record["attempts"]
        in_flight_elsewhere[i] = _retries_in_flight_elsewhere(record["attempts"])
        timelines[i] = [(a["number"], a["kind"], a["user_agent"], a["received_at"],
                         a["responded_at"]) for a in record["attempts"]]

    # The slow ones are the point: each had a retry waiting on another instance for the
    # original; plain ones had concurrent duplicates.
    alone = {i: timelines[i] for i in slow if in_flight_elsewhere[i] < 1}
    assert not alone, f"slow transactions without a retry in flight elsewhere: {alone}"

    after = _get(f"{instances[2].url}/api/rules/{rule['id']}")
    assert (after["remaining"], after["fired"]) == (0, STORM_DECLINES)

    engine = create_engine(database)
    try:
        with engine.connect() as connection:
            row = connection.execute(text(
                "SELECT count(*), sum(attempt_count), count(*) FILTER (WHERE issued_count > 1)"
                " FROM transactions WHERE transaction_id = ANY(:ids)"),
                {"ids": [body["transaction_id"] for body in bodies]}).one()
    finally:
        engine.dispose()
    assert tuple(row) == (len(bodies), len(bodies) * ATTEMPTS, 0)


def _retries_in_flight_elsewhere(attempts: list[dict[str, Any]]) -> int:
    """Retries that reached another instance than the original's while it was still open."""
    original = next(a for a in attempts if a["kind"] == "original")
    ended = _time(original["responded_at"])
    return sum(1 for a in attempts if a is not original
               and a["user_agent"] != original["user_agent"]
               and _time(a["received_at"]) < ended)


# -- "decline the next N" across instances -------------------------------------------------------

def test_decline_the_next_seven_is_exactly_seven_across_three_instances(instances):
    declines, charges = 7, 30
    rule = _arm(instances[1], {"match": {"description_contains": "next seven"},
                               "action": {"type": "decline", "error_code": "do_not_honor"},
                               "remaining": declines})
    bodies = [card_payload(description="the next seven") for _ in range(charges)]
    answers = post_concurrently([(instances[i % INSTANCES].url + "/", body)
                                 for i, body in enumerate(bodies)])
    assert {r.status_code for r in answers} == {200}
    declined = [r.json() for r in answers if r.json()["error_code"] == "do_not_honor"]
    approved = [r.json() for r in answers if r.json()["charge_id"]]
    assert (len(declined), len(approved)) == (declines, charges - declines)

    # A retry on the next instance is a replay: it neither counts the rule nor changes the answer.
    retries = post_concurrently([(instances[(i + 1) % INSTANCES].url + "/", body)
                                 for i, body in enumerate(bodies)])
    assert [r.content for r in retries] == [r.content for r in answers]
    after = _get(f"{instances[0].url}/api/rules/{rule['id']}")
    assert (after["remaining"], after["fired"]) == (0, declines)


# -- what a retry waiting on another instance costs the database ---------------------------------

def test_a_retry_waiting_on_another_instance_polls_with_a_back_off(instances, database, serve):
    """One retry waits about a second on another instance: the database sees one short read
    transaction per poll of the schedule, a dozen or so, where a busy loop would make hundreds
    (a poll is 4 round trips of well under a millisecond each on loopback)."""
    url = make_url(database)
    counter = QueryCounter(url.host or "127.0.0.1", url.port or 5432)
    try:
        through = url.set(host="127.0.0.1", port=counter.port,
                          query={**url.query, "sslmode": "disable"})
        waiting, = serve(through.render_as_string(hide_password=False),
                         FAKEPROC_TIME_SCALE=str(TIME_SCALE))
        holding = instances[0]
        _arm(holding, {"match": {"description_contains": "wait cost", "attempt": 1},
                       "action": {"type": "delay", "seconds": 1 / TIME_SCALE}})  # 1 s
        # A first request loads the instance's connectors and rules: not part of a wait.
        assert requests.post(waiting.url + "/", json=card_payload(), timeout=30).ok
        body = card_payload(description="wait cost")
        with ThreadPoolExecutor(max_workers=1) as pool:
            original = pool.submit(requests.post, holding.url + "/", json=body, timeout=30)
            wait_in_flight(holding.url, body["transaction_id"])
            before, started = counter.counts(), time.monotonic()
            retry = requests.post(waiting.url + "/", json=body, timeout=30)
            waited, used = time.monotonic() - started, counter.counts() - before
            assert retry.content == original.result().content
    finally:
        counter.close()
    assert retry.json()["charge_id"].startswith("ch_")
    assert waited > 0.5, "the retry did not wait: nothing measured"
    # The retry's own work (register and record the attempt, close it) is 2-3 transactions;
    # every poll is one more. Twice the schedule leaves room for a slow machine; a busy loop
    # would exceed it a hundredfold.
    expected = polls_by_schedule(waited)
    assert expected <= used["transactions"] <= 2 * expected + 4, (waited, used)
    assert used["statements"] <= 2 * expected + 20, (waited, used)


def test_an_instance_starting_while_an_attempt_is_held_elsewhere_leaves_it_alone(
        instances, database, serve):
    """A new instance sweeps the store at start-up for what dead processes left open; an
    attempt held on a live instance, within its expected end, is not one of them (a rolling
    restart of one machine must not disturb the others)."""
    holding, hold = instances[1], 5.0
    _arm(holding, {"match": {"description_contains": "held at start-up", "attempt": 1},
                   "action": {"type": "delay", "seconds": hold / TIME_SCALE}})
    body = card_payload(description="held at start-up")
    with ThreadPoolExecutor(max_workers=1) as pool:
        original = pool.submit(requests.post, holding.url + "/", json=body, timeout=30)
        wait_in_flight(holding.url, body["transaction_id"])
        started = time.monotonic()
        newcomer, = serve(database, FAKEPROC_TIME_SCALE=str(TIME_SCALE))
        record = _get(f"{newcomer.url}/api/transactions/{body['transaction_id']}")
        assert record["status"] == "in_flight", (
            f"the new instance took {time.monotonic() - started:.1f} s to start, longer than "
            f"the {hold:g} s hold: nothing tested")
        retry = requests.post(newcomer.url + "/", json=body, timeout=30)
        assert retry.content == original.result().content
    assert "takeover" not in newcomer.log() and "left" not in newcomer.log()
    record = _get(f"{holding.url}/api/transactions/{body['transaction_id']}")
    assert record["issued"] == 1 and record["status"] == "succeeded"
    assert [(a["kind"], a["delivery"]) for a in record["attempts"]] == [
        ("original", "response"), ("replay", "response")]



def test_a_request_blocked_on_a_row_lock_does_not_stall_its_worker(instances, database):
    """Each instance has one worker: while a retry waits for a row another connection holds
    locked, the same worker still answers everything else (psycopg waits the gevent way)."""
    first = instances[0]
    body = card_payload()
    assert requests.post(first.url + "/", json=body, timeout=30).ok
    engine = create_engine(database)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        with engine.connect() as locker:
            locker.execute(text("SELECT id FROM transactions WHERE transaction_id = :t "
                                "FOR UPDATE"), {"t": body["transaction_id"]})
            blocked = pool.submit(requests.post, first.url + "/", json=body, timeout=30)
            time.sleep(0.3)  # the retry reaches the locked row and waits there
            assert not blocked.done()
            started = time.monotonic()
            assert requests.get(first.url + "/api/health", timeout=30).ok
            fresh = requests.post(first.url + "/", json=card_payload(), timeout=30)
            assert fresh.json()["charge_id"] and time.monotonic() - started < 2.0
            locker.rollback()
        assert blocked.result(timeout=30).json()["charge_id"]
    finally:
        pool.shutdown()
        engine.dispose()
