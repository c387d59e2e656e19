"""Shared fixtures: an app on a fresh SQLite file per test (pytest-flask's `app`), a live server
in a thread, `fakeproc serve` processes, and PostgreSQL databases when one is configured."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from fakeproc import create_app
from fakeproc.store.models import db

POSTGRES_ENV = "FAKEPROC_TEST_POSTGRES_URL"
TEST_SCALE = 0.01  # 12 s of configured time pass in 120 ms


def card_payload(**overrides: Any) -> dict[str, Any]:
    """A charge as Twilio sends it, with a fresh transaction_id."""
    body = {"method": "charge", "transaction_id": f"tx-{uuid.uuid4().hex[:12]}",
            "cardnumber": "4111111111111111", "cvv": "123", "amount": "10.00",
            "currency_code": "USD", "expiry_month": "08", "expiry_year": "2035",
            "description": "pizza", "postal_code": "94111", "parameters": {}}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def ach_payload(**overrides: Any) -> dict[str, Any]:
    body = {"method": "charge", "transaction_id": f"tx-{uuid.uuid4().hex[:12]}",
            "bankaccountnumber": "123456789", "routingnumber": "121000358", "amount": "10.00",
            "currency_code": "USD", "description": "pizza"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def post_concurrently(requests_: list[tuple[str, dict]]) -> list[requests.Response]:
    """POST every (url, body) from its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(len(requests_))

    def send(item: tuple[str, dict]) -> requests.Response:
        barrier.wait()
        return requests.post(item[0], json=item[1], timeout=30)

    with ThreadPoolExecutor(max_workers=len(requests_)) as pool:
        return list(pool.map(send, requests_))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite store (schema, store key, Default), copied for each test."""
    path = tmp_path_factory.mktemp("template") / "fakeproc.db"
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "TESTING": True})
    with app.app_context():
        db.session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        db.engine.dispose()
    _warm_up(path)
    return path


def _warm_up(template: Path) -> None:
    """Run the request paths once, on a scratch copy, so that the first test's first charge
    does not pay for lazy imports: with the 10 s timeout scaled to 100 ms, it would be late."""
    scratch = template.with_name("warm-up.db")
    shutil.copy(template, scratch)
    app = create_app({"DATABASE_URL": f"sqlite:///{scratch}", "AUTO_MIGRATE": False,
                      "TESTING": True})
    client = app.test_client()
    body = card_payload()
    for _ in range(2):
        client.post("/", json=body)
    client.get(f"/api/transactions/{body['transaction_id']}")
    client.get("/api/transactions")
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def db_path(tmp_path: Path, template_db: Path) -> Path:
    path = tmp_path / "fakeproc.db"
    shutil.copy(template_db, path)
    return path


@pytest.fixture
def app_config(db_path: Path) -> dict[str, Any]:
    """Override in a module or a test to configure the app differently."""
    return {}


@pytest.fixture
def make_app(db_path: Path, template_db: Path) -> Iterator[Callable[..., Any]]:
    """Build apps on the test's store, or with `fresh=True` each on a new copy of it."""
    apps = []

    def build(fresh: bool = False, **config: Any):
        path = db_path
        if fresh:
            path = db_path.with_name(f"fresh-{len(apps)}.db")
            shutil.copy(template_db, path)
        settings = {"DATABASE_URL": f"sqlite:///{path}", "AUTO_MIGRATE": False,
                    "TIME_SCALE": TEST_SCALE, "TESTING": True, **config}
        built = create_app(settings)
        apps.append(built)
        return built

    yield build
    for built in apps:
        with built.app_context():
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Any], app_config: dict[str, Any]):
    return make_app(**app_config)


class LiveServer:
    """The app served over real HTTP on loopback by a threaded server in this process."""

    def __init__(self, flask_app: Any):
        self.app = flask_app
        self._server = make_server("127.0.0.1", 0, flask_app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._thread.join(5)


@pytest.fixture
def server(app: Any) -> Iterator[LiveServer]:
    with LiveServer(app) as live:
        yield live


class ServeProcess:
    """One `fakeproc serve` process: the production server, on its own port."""

    def __init__(self, database_url: str, log_path: Path, workers: int = 1,
                 host: str = "127.0.0.1", **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environment = {**os.environ, "FAKEPROC_TIME_SCALE": str(TEST_SCALE), **env}
        command = [sys.executable, "-m", "fakeproc", "serve", "--host", host,
                   "--port", str(self.port),
                   "--workers", str(workers), "--database-url", database_url]
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=environment)

    def wait_ready(self, timeout: float = 30.0) -> ServeProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fakeproc serve exited:\n{self.log()}")
            try:
                if requests.get(self.url + "/api/health", timeout=1).ok:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # not up, or slow to start
                time.sleep(0.1)
        raise RuntimeError(f"fakeproc serve did not start:\n{self.log()}")

    def quit(self) -> None:
        """Ctrl-C: the server quits at once. SIGTERM would wait up to 5 s for idle keep-alive
        connections; nothing a test checks afterwards needs that wait."""
        self.process.send_signal(signal.SIGINT)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.quit()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


class ServeGroup:
    """Starts `fakeproc serve` processes, all before any is awaited, and stops them all."""

    def __init__(self, log_dir: Path, host: str = "127.0.0.1"):
        self.log_dir = log_dir
        self.host = host
        self.started: list[ServeProcess] = []

    def __call__(self, database_url: str, count: int = 1, **env: str) -> list[ServeProcess]:
        batch = [ServeProcess(database_url, self.log_dir / f"serve-{len(self.started) + i}.log",
                              host=self.host, **env) for i in range(count)]
        self.started.extend(batch)
        return [process.wait_ready() for process in batch]

    def stop(self) -> None:
        # Ask them all first: each takes a moment to shut down, so they do it together.
        for process in self.started:
            if process.process.poll() is None:
                process.quit()
        for process in self.started:
            process.stop()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeGroup]:
    group = ServeGroup(tmp_path)
    yield group
    group.stop()


def make_postgres_database() -> tuple[str, Callable[[], None]]:
    """A fresh, empty PostgreSQL database and the function that drops it; skips without one."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}, e.g. "
                    "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    name = f"fakeproc_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(base).set(database=name).render_as_string(hide_password=False), drop


@contextlib.contextmanager
def two_serve_processes(backend: str, log_dir: Path,
                        template: Path | None = None) -> Iterator[list[ServeProcess]]:
    """Two `fakeproc serve` processes started together on one database: a new SQLite file
    (a copy of `template` when given) or a new PostgreSQL database, dropped afterwards."""
    drop = None
    if backend == "sqlite":
        database = log_dir / "shared.db"
        if template is not None:
            shutil.copy(template, database)
        url = f"sqlite:///{database}"
    else:
        url, drop = make_postgres_database()
    group = ServeGroup(log_dir)
    try:
        yield group(url, count=2)
    finally:
        group.stop()
        if drop:
            drop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    url, drop = make_postgres_database()
    try:
        yield url
    finally:
        drop()


def wait_in_flight(url: str, transaction_id: str, timeout: float = 10.0) -> None:
    """Wait (real seconds) until the server at `url` shows the transaction in flight."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = requests.get(f"{url}/api/transactions/{transaction_id}", timeout=30)
        if response.status_code == 200 and response.json()["status"] == "in_flight":
            return
        time.sleep(0.005)
    raise AssertionError(f"{transaction_id} was never seen in flight")
