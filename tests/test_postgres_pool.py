"""PostgreSQL connections: a worker uses at most its pool's, however many requests come at once
(a storm over three instances included); one that sat unused is checked before it is handed
out, so a server that dropped it meanwhile costs the next charge nothing; and a database out of
reach is a JSON 503 on every surface."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import psycopg
import pytest
import requests
from sqlalchemy.engine import make_url

from fakeproc import create_app
from fakeproc.store import schema
from fakeproc.store.models import db

from conftest import TEST_SCALE, ServeGroup, ServeProcess, card_payload, post_concurrently

pytestmark = pytest.mark.postgres


def _admin(url: str) -> psycopg.Connection:
    parsed = make_url(url)
    return psycopg.connect(host=parsed.host, port=parsed.port, user=parsed.username,
                           password=parsed.password, dbname="postgres", autocommit=True)


def connections_to(url: str) -> int:
    with _admin(url) as admin:
        return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                             (make_url(url).database,)).fetchone()[0]


@contextlib.contextmanager
def peak_connections(url: str) -> Iterator[list[int]]:
    """The most connections to the database of `url` seen while the block ran (sampled
    without pause, from a thread): `[peak]`, filled when the block ends."""
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], connections_to(url))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield peak
    finally:
        done.set()
        watcher.join()


def drop_connections_of(url: str) -> int:
    """End every server session of the database, as a restart would; returns how many."""
    with _admin(url) as admin:
        ended = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = %s AND pid <> pg_backend_pid()",
                              (make_url(url).database,)).fetchall()
    return len(ended)


@pytest.fixture
def postgres_app(postgres_url):
    app = create_app({"DATABASE_URL": postgres_url, "TESTING": True, "TIME_SCALE": TEST_SCALE})
    yield app
    with app.app_context():
        db.engine.dispose()


def test_a_connection_dropped_while_idle_is_replaced_before_a_charge_uses_it(
        postgres_app, postgres_url, monkeypatch):
    client = postgres_app.test_client()
    assert client.post("/", json=card_payload()).status_code == 200  # the pool keeps it
    assert drop_connections_of(postgres_url) >= 1
    monkeypatch.setattr(schema, "PING_AFTER_IDLE_SECONDS", 0.0)  # as if unused for a while

    body = card_payload()
    response = client.post("/", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["charge_id"]
    stored = client.get(f"/api/transactions/{body['transaction_id']}").get_json()
    assert stored["status"] == "succeeded"


def test_a_burst_of_charges_waits_for_the_pool_instead_of_opening_more(postgres_url, tmp_path):
    group = ServeGroup(tmp_path)
    try:
        (server,) = group(postgres_url)  # one worker
        with peak_connections(postgres_url) as peak:
            bodies = [card_payload() for _ in range(60)]
            answers = post_concurrently([(server.url + "/", body) for body in bodies])
        assert [answer.status_code for answer in answers] == [200] * 60
        assert all(answer.json()["charge_id"] for answer in answers)
        assert 1 <= peak[0] <= schema.POSTGRES_POOL_SIZE, f"{peak[0]} connections at once"
    finally:
        group.stop()


def test_a_database_out_of_reach_is_a_json_503_on_each_surface(postgres_app, postgres_url,
                                                               caplog):
    client = postgres_app.test_client()
    assert client.post("/", json=card_payload()).status_code == 200
    with _admin(postgres_url) as admin:  # gone, as a server that is down or refusing
        admin.execute(f'DROP DATABASE "{make_url(postgres_url).database}" WITH (FORCE)')

    for _ in range(2):  # the pooled connection that broke, then a new one that cannot connect
        charge = client.post("/", json=card_payload())
        assert charge.status_code == 503 and charge.headers["Retry-After"] == "1"
        assert charge.json["charge_id"] is None
        assert charge.json["error_code"] == "service_unavailable"
        assert "database is out of reach" in charge.json["error_message"]
    listed = client.get("/api/transactions")
    assert listed.status_code == 503 and "out of reach" in listed.json["error"]
    looked_up = client.get("/api/transactions/4242424242424242")  # an id that looks like a card
    assert looked_up.status_code == 503
    assert "GET /api/transactions/************4242" in caplog.text
    assert "4242424242424242" not in caplog.text
    page = client.get("/admin/transactions")
    assert page.status_code == 503 and "out of reach" in page.get_data(as_text=True)
    form = client.post("/admin/quick-arm", data={"action": "decline"})
    assert form.status_code == 503 and "out of reach" in form.get_data(as_text=True)


@pytest.mark.slow
def test_a_storm_over_three_instances_is_answered_without_a_500(postgres_url, tmp_path):
    """Three instances of two workers on one database, 500 requests at once: 100 payments,
    each sent 5 times round the instances, the first attempt of each held (magic 4003.00,
    3 s scaled). Every request gets its payment's one charge; none is left in flight; the
    connections stay within the instances' pools."""
    group = ServeGroup(tmp_path)
    group.started += [ServeProcess(postgres_url, tmp_path / f"storm-{n}.log", workers=2)
                      for n in range(3)]
    try:
        servers = [process.wait_ready() for process in group.started]
        payments = [card_payload(amount="4003.00") for _ in range(100)]
        sends = [(servers[(n + k) % 3].url + "/", body)
                 for n, body in enumerate(payments) for k in range(5)]
        with peak_connections(postgres_url) as peak:
            answers = post_concurrently(sends)
        statuses = sorted({answer.status_code for answer in answers})
        assert statuses == [200], statuses
        for n, body in enumerate(payments):
            ids = {answer.json()["charge_id"] for answer in answers[n * 5:(n + 1) * 5]}
            assert len(ids) == 1 and None not in ids, (body["transaction_id"], ids)
            stored = requests.get(f"{servers[0].url}/api/transactions/{body['transaction_id']}",
                                  timeout=30).json()
            assert stored["status"] == "succeeded", stored
        assert peak[0] <= 3 * 2 * schema.POSTGRES_POOL_SIZE, f"{peak[0]} connections"
        for process in group.started:
            assert "Traceback" not in process.log()
    finally:
        group.stop()
