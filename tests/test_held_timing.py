"""When held requests end: delays and hangs count from the request's arrival as the server
stamped it, and the writes of a process queue with prompt requests ahead of held ones."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from conftest import TEST_SCALE, card_payload

from fakeproc.turns import Turns
from fakeproc.web.transport import ARRIVED

DELAY_SECONDS = 30  # 300 ms at the test time scale


def _charge(client: Any, body: dict[str, Any], arrived: datetime | None = None) -> Any:
    environ = {ARRIVED: arrived} if arrived else {}
    return client.post("/", json=body, environ_base=environ)


def _attempt(client: Any, transaction_id: str) -> dict[str, Any]:
    record = client.get(f"/api/transactions/{transaction_id}").get_json()
    assert len(record["attempts"]) == 1, record["attempts"]
    return record["attempts"][0]


def _arm_delay(client: Any, body: dict[str, Any]) -> None:
    response = client.post("/api/rules", json={
        "match": {"transaction_id": body["transaction_id"]},
        "action": {"type": "delay", "seconds": DELAY_SECONDS}})
    assert response.status_code == 201, response.get_json()


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def test_a_delay_ends_its_configured_time_after_arrival_not_after_intake(client):
    """A request that queued in front of fakeproc for longer than its delay is answered at
    once, and the record says it came when the server stamped it."""
    body = card_payload()
    _arm_delay(client, body)
    arrived = datetime.now(timezone.utc) - timedelta(seconds=1)
    started = time.monotonic()
    answer = _charge(client, body, arrived).get_json()
    assert time.monotonic() - started < DELAY_SECONDS * TEST_SCALE
    assert answer["charge_id"].startswith("ch_")
    attempt = _attempt(client, body["transaction_id"])
    assert _moment(attempt["received_at"]) == arrived
    assert attempt["late"] is True  # a second after arrival, past the 100 ms timeout


def test_a_delayed_attempt_is_recorded_as_answered_when_it_was_due(client):
    body = card_payload()
    _arm_delay(client, body)
    answer = _charge(client, body).get_json()
    assert answer["charge_id"].startswith("ch_")
    attempt = _attempt(client, body["transaction_id"])
    held = _moment(attempt["responded_at"]) - _moment(attempt["received_at"])
    assert held >= timedelta(seconds=DELAY_SECONDS * TEST_SCALE)
    assert attempt["delivery"] == "response" and attempt["late"] is True  # 300 ms > 100 ms


def test_an_undelayed_charge_is_stamped_on_arrival_too(client):
    body = card_payload()
    arrived = datetime.now(timezone.utc) - timedelta(milliseconds=50)
    assert _charge(client, body, arrived).status_code == 200
    attempt = _attempt(client, body["transaction_id"])
    assert _moment(attempt["received_at"]) == arrived
    assert attempt["late"] is False  # 50 ms is within the 100 ms timeout


# -- turns -----------------------------------------------------------------------------------

def _queue(turns: Turns, order: list[str], name: str, patient: bool) -> threading.Thread:
    def take() -> None:
        turns.acquire(patient)
        order.append(name)
        turns.release()

    waiting = len(turns._prompt) + len(turns._patient)
    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while len(turns._prompt) + len(turns._patient) == waiting:  # queued before the next
        assert time.monotonic() < deadline, f"{name} never queued"
        time.sleep(0.001)
    return thread


def test_prompt_writers_go_before_patient_ones_each_in_order_of_arrival():
    turns, order = Turns(), []
    turns.acquire()
    threads = [_queue(turns, order, "held-1", patient=True),
               _queue(turns, order, "fresh-1", patient=False),
               _queue(turns, order, "held-2", patient=True),
               _queue(turns, order, "fresh-2", patient=False)]
    turns.release()
    for thread in threads:
        thread.join(5)
    assert order == ["fresh-1", "fresh-2", "held-1", "held-2"]


def test_the_turn_is_free_again_once_every_writer_is_done():
    turns = Turns()
    for patient in (False, True, False):
        turns.acquire(patient)
        turns.release()
    acquired = threading.Event()
    thread = threading.Thread(target=lambda: (turns.acquire(), acquired.set()), daemon=True)
    thread.start()
    assert acquired.wait(5)
