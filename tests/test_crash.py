"""Crash safety: `kill -9` a server with attempts in flight (a long delay, a hang), start it
again on the same database, and a retry gets a consistent answer: nothing committed is lost,
nothing is charged twice, and the attempts left behind read as interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import TEST_SCALE, card_payload, free_port, make_postgres_database

pytestmark = pytest.mark.slow

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
# Configured seconds; at the test scale 100 s of delay is 1 s, the 30 s grace 0.3 s.
HELD_SECONDS = 100
GRACE_SECONDS = 30


class Server:
    """`fakeproc serve` in a session of its own, so that SIGKILL takes master and workers."""

    def __init__(self, url: str, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "ab")
        env = {**os.environ, "FAKEPROC_TIME_SCALE": str(TEST_SCALE)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fakeproc", "serve", "--port", str(self.port), "--workers",
             "1", "--database-url", url], stdout=self._log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/api/health", timeout=1).ok:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not up, or slow to start
                time.sleep(0.05)
        raise RuntimeError(f"fakeproc serve did not start: {log.read_text()}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)
        self._log.close()

    def get(self, path: str) -> Any:
        response = requests.get(self.url + path, timeout=10)
        assert response.ok, response.text
        return response.json()

    def post(self, body: dict[str, Any], timeout: float = 10) -> requests.Response:
        return requests.post(self.url + "/", json=body, timeout=timeout)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crash.db'}"
        return
    url, drop = make_postgres_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def start(servers: list[Server], database: str, tmp_path: Path) -> Server:
    server = Server(database, tmp_path / f"serve-{len(servers)}.log")
    servers.append(server)
    return server


def send_in_background(server: Server, body: dict[str, Any]) -> threading.Thread:
    """A client whose connection the crash will cut."""
    def send() -> None:
        try:
            server.post(body, timeout=30)
        except requests.RequestException:
            pass

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def wait_until_open(server: Server, transaction_id: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = requests.get(f"{server.url}/api/transactions/{transaction_id}", timeout=10)
        if response.ok and any(a["responded_at"] is None for a in response.json()["attempts"]):
            return
        time.sleep(0.02)
    raise AssertionError(f"{transaction_id} never had an open attempt")


def arm(server: Server, transaction_id: str, action: dict[str, Any]) -> None:
    rule = {"match": {"transaction_id": transaction_id, "attempt": 1}, "action": action}
    assert requests.post(server.url + "/api/rules", json=rule, timeout=10).status_code == 201


def crash_with_attempts_in_flight(servers: list[Server], database: str,
                                  tmp_path: Path) -> tuple[dict, dict, dict, str]:
    """A settled charge, a charge in a long delay and a charge hanging with its charge made;
    then SIGKILL. Returns the three bodies and the settled charge's id."""
    server = start(servers, database, tmp_path)
    settled, delayed, hung = card_payload(), card_payload(), card_payload()
    charge_id = server.post(settled).json()["charge_id"]
    arm(server, delayed["transaction_id"], {"type": "delay", "seconds": HELD_SECONDS})
    arm(server, hung["transaction_id"], {"type": "hang", "seconds": HELD_SECONDS,
                                         "charge": True})
    clients = [send_in_background(server, delayed), send_in_background(server, hung)]
    wait_until_open(server, delayed["transaction_id"])
    wait_until_open(server, hung["transaction_id"])
    server.kill()
    for client in clients:
        client.join(10)
    return settled, delayed, hung, charge_id


def test_after_a_crash_and_a_restart_retries_get_consistent_answers(servers, database,
                                                                    tmp_path):
    settled, delayed, hung, charge_id = crash_with_attempts_in_flight(servers, database,
                                                                      tmp_path)
    # Started again after the held attempts' expected end: the start-up sweep finds them.
    time.sleep(TEST_SCALE * (HELD_SECONDS + GRACE_SECONDS))
    server = start(servers, database, tmp_path)
    assert "left 2 attempts open" in (tmp_path / "serve-1.log").read_text()

    # Nothing committed is lost.
    kept = server.get(f"/api/transactions/{settled['transaction_id']}")
    assert kept["charge_id"] == charge_id and kept["status"] == "succeeded"

    # The delayed charge was never decided: its attempt reads interrupted, the retry decides.
    before = server.get(f"/api/transactions/{delayed['transaction_id']}")
    assert before["status"] == "failed" and before["issued"] == 0
    assert [a["delivery"] for a in before["attempts"]] == ["interrupted"]
    retry = server.post(delayed).json()
    assert retry["charge_id"].startswith("ch_")
    assert server.post(delayed).json() == retry
    after = server.get(f"/api/transactions/{delayed['transaction_id']}")
    assert after["issued"] == 1 and [a["delivery"] for a in after["attempts"]] == [
        "interrupted", "response", "response"]
    assert [a["kind"] for a in after["attempts"]] == ["fault", "original", "replay"]

    # The hung charge was made before the crash: an orphan until the retry hears it.
    orphan = server.get(f"/api/transactions/{hung['transaction_id']}")
    assert orphan["status"] == "succeeded" and orphan["orphaned"] is True
    assert [a["delivery"] for a in orphan["attempts"]] == ["interrupted"]
    assert server.post(hung).json()["charge_id"] == orphan["charge_id"]
    heard = server.get(f"/api/transactions/{hung['transaction_id']}")
    assert heard["orphaned"] is False and heard["issued"] == 1
    # It decided before the crash: it stays the original, though cut short.
    assert [a["kind"] for a in heard["attempts"]] == ["original", "replay"]


def test_a_retry_waiting_on_a_dead_decision_takes_it_over(servers, database, tmp_path):
    """Restarted before the dead attempt's deadline, the retry waits for it like for any
    attempt in flight, then decides in its place: one charge, and the replay agrees."""
    server = start(servers, database, tmp_path)
    body = card_payload()
    arm(server, body["transaction_id"], {"type": "delay", "seconds": 3 * HELD_SECONDS})
    client = send_in_background(server, body)
    wait_until_open(server, body["transaction_id"])
    server.kill()
    client.join(10)
    server = start(servers, database, tmp_path)
    started = time.monotonic()
    answer = server.post(body, timeout=30).json()  # a patient client: Twilio's would retry
    assert answer["charge_id"].startswith("ch_")
    assert time.monotonic() - started < TEST_SCALE * (3 * HELD_SECONDS + GRACE_SECONDS) + 5
    record = server.get(f"/api/transactions/{body['transaction_id']}")
    assert record["issued"] == 1 and record["charge_id"] == answer["charge_id"]
    assert [a["delivery"] for a in record["attempts"]] == ["interrupted", "response"]
    # The retry decided: it is the original; the attempt cut short decided nothing.
    assert [a["kind"] for a in record["attempts"]] == ["fault", "original"]
    assert server.post(body).json() == answer
    assert server.get(f"/api/transactions/{body['transaction_id']}")["attempts"][2]["kind"] \
        == "replay"
    assert "takeover" in (tmp_path / "serve-1.log").read_text()


def test_three_crashes_in_a_row_lose_nothing(servers, database, tmp_path):
    charged: dict[str, str] = {}
    for _ in range(3):
        settled, delayed, hung, charge_id = crash_with_attempts_in_flight(servers, database,
                                                                          tmp_path)
        charged[settled["transaction_id"]] = charge_id
    time.sleep(TEST_SCALE * (HELD_SECONDS + GRACE_SECONDS))
    server = start(servers, database, tmp_path)
    for transaction_id, charge_id in charged.items():
        assert server.get(f"/api/transactions/{transaction_id}")["charge_id"] == charge_id
    listed = server.get("/api/transactions?limit=500")["data"]
    assert len(listed) == 9 and not any(t["double_charged"] for t in listed)
    assert not server.get("/api/transactions?status=in_flight")["data"]
