"""When held requests end: delays and hangs count from the request's arrival as the server
stamped it, and the writes of a process queue with prompt requests ahead of held ones."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fakeproc.store.sqlite_write_turns import Turns
from fakeproc.web.transport import ARRIVED

from conftest import TEST_SCALE, card_payload

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


# -- arrival stamps under `fakeproc serve` ---------------------------------------------------

SPLIT_PAUSE = 0.2  # between a request's first bytes and the rest of it


def _send_in_two_parts(connection: socket.socket, body: dict[str, Any]) -> datetime:
    """Send a charge whose request line goes out SPLIT_PAUSE before its headers and body, as
    a client's request does when it waits in a queue in front of the app; returns when the
    first bytes were sent."""
    payload = json.dumps(body).encode()
    sent = datetime.now(timezone.utc)
    connection.sendall(b"POST / HTTP/1.1\r\n")
    time.sleep(SPLIT_PAUSE)
    connection.sendall(b"Host: fakeproc\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
    return sent


def _read_answer(connection: socket.socket) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        chunk = connection.recv(65536)
        assert chunk, answer
        answer += chunk
    return answer


def test_serve_stamps_each_request_when_its_first_bytes_reached_the_server(serve, tmp_path):
    """`received_at` is when the kernel received a request's first bytes, not when the app got
    to it: on a new connection, and for the next request on the same keep-alive one."""
    (server,) = serve(f"sqlite:///{tmp_path / 'stamps.db'}")
    bodies = [card_payload(), card_payload()]
    sent = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        for body in bodies:
            sent.append(_send_in_two_parts(connection, body))
            assert b" 200 OK" in _read_answer(connection).split(b"\r\n", 1)[0]
    for body, first_bytes in zip(bodies, sent):
        record = json.loads(_get(f"{server.url}/api/transactions/{body['transaction_id']}"))
        stamp = _moment(record["attempts"][0]["received_at"])
        assert first_bytes <= stamp < first_bytes + timedelta(seconds=SPLIT_PAUSE / 2), (
            first_bytes, stamp)


def test_a_burst_that_waits_to_be_accepted_is_stamped_when_it_arrived(serve, tmp_path):
    """New connections that queue before the worker accepts them (here: the worker is frozen
    for 0.4 s) are stamped when their bytes arrived, whichever listening socket of the port
    the kernel gave them to."""
    (server,) = serve(f"sqlite:///{tmp_path / 'burst.db'}")
    [worker] = _children(server.process.pid)
    bodies = [card_payload() for _ in range(24)]
    os.kill(worker, signal.SIGSTOP)
    try:
        sent = datetime.now(timezone.utc)
        connections = []
        for body in bodies:  # each on a connection of its own, as a burst of new clients
            connection = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            connection.sendall(_request(body))
            connections.append(connection)
        time.sleep(0.4)
    finally:
        os.kill(worker, signal.SIGCONT)
    for connection in connections:
        with connection:
            assert b" 200 OK" in _read_answer(connection).split(b"\r\n", 1)[0]
    stamps = [_moment(json.loads(_get(f"{server.url}/api/transactions/{body['transaction_id']}"))
                      ["attempts"][0]["received_at"]) for body in bodies]
    late = [stamp - sent for stamp in stamps if stamp - sent > timedelta(seconds=0.2)]
    assert late == [], f"{len(late)} of {len(bodies)} stamped after the worker woke up"


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in tasks]


def _request(body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    return (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(payload)).encode() + b"\r\nConnection: close\r\n\r\n"
            + payload)


def _get(url: str) -> bytes:
    import requests

    response = requests.get(url, timeout=30)
    assert response.ok, response.text
    return response.content


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
