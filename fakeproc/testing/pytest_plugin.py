"""pytest fixtures: a fakeproc for each test session, reset before each test, to break on demand.

    def test_checkout_survives_a_decline(fakeproc, fakeproc_server, fakeproc_payload):
        fakeproc.decline_next("insufficient_funds")
        ...  # point the code under test at fakeproc_server.url
        fakeproc.assert_declined(body["transaction_id"], "insufficient_funds")

Fixture names start with `fakeproc` so that they never clash with pytest-flask's (`app`,
`client`, `live_server`). Settings come from ini options (`fakeproc_time_scale = 0.01`, …) or
from overriding the session fixtures of the same names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .controller import Controller, ServerErrors

_INI = {
    "fakeproc_host": ("127.0.0.1", "address of the fakeproc_server fixture"),
    "fakeproc_port": ("0", "port of the fakeproc_server fixture (0: a free port)"),
    "fakeproc_username": ("", "Basic-auth username of the Default connector (empty: none)"),
    "fakeproc_password": ("", "Basic-auth password of the Default connector (empty: none)"),
    "fakeproc_time_scale": ("0.01", "multiplies every delay, hang and the 10 s timeout"),
    "fakeproc_database_url": ("", "store URL (empty: a new SQLite file per test session)"),
    "fakeproc_seed": ("", "seed of fakeproc_payload (empty: one per test, from its id)"),
}
_ERRORS = ServerErrors()


def pytest_addoption(parser: pytest.Parser) -> None:
    for name, (default, help_) in _INI.items():
        parser.addini(name, help_, default=default)


def pytest_configure(config: pytest.Config) -> None:
    for name in ("fakeproc", "werkzeug"):
        logging.getLogger(name).addHandler(_ERRORS)


def pytest_unconfigure(config: pytest.Config) -> None:
    for name in ("fakeproc", "werkzeug"):
        logging.getLogger(name).removeHandler(_ERRORS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """An error inside fakeproc while the test ran fails the test, with fakeproc's traceback."""
    uses = any(name.startswith("fakeproc") for name in getattr(item, "fixturenames", ()))
    mark = _ERRORS.mark()
    result = yield
    if uses:
        _ERRORS.raise_since(mark)
    return result


# -- settings: ini options, or override these fixtures in a conftest.py -----------------------

@pytest.fixture(scope="session")
def fakeproc_host(pytestconfig: pytest.Config) -> str:
    return pytestconfig.getini("fakeproc_host")


@pytest.fixture(scope="session")
def fakeproc_port(pytestconfig: pytest.Config) -> int:
    return int(pytestconfig.getini("fakeproc_port"))


@pytest.fixture(scope="session")
def fakeproc_username(pytestconfig: pytest.Config) -> str | None:
    return pytestconfig.getini("fakeproc_username") or None


@pytest.fixture(scope="session")
def fakeproc_password(pytestconfig: pytest.Config) -> str | None:
    return pytestconfig.getini("fakeproc_password") or None


@pytest.fixture(scope="session")
def fakeproc_time_scale(pytestconfig: pytest.Config) -> float:
    return float(pytestconfig.getini("fakeproc_time_scale"))


@pytest.fixture(scope="session")
def fakeproc_database_url(pytestconfig: pytest.Config,
                          tmp_path_factory: pytest.TempPathFactory) -> str:
    configured = pytestconfig.getini("fakeproc_database_url")
    return configured or f"sqlite:///{tmp_path_factory.mktemp('fakeproc') / 'fakeproc.db'}"


@pytest.fixture(scope="session")
def fakeproc_config() -> dict[str, Any]:
    """Any other app setting (the keys of `fakeproc.create_app`'s mapping)."""
    return {}


# -- the app, its server, the controller ------------------------------------------------------

@pytest.fixture(scope="session")
def fakeproc_app(fakeproc_database_url: str, fakeproc_username: str | None,
                 fakeproc_password: str | None, fakeproc_time_scale: float,
                 fakeproc_config: dict[str, Any]) -> Iterator[Any]:
    """The fakeproc Flask app of this test session (one store, reset before each test)."""
    from .. import create_app
    from ..store.models import db

    app = create_app({"DATABASE_URL": fakeproc_database_url, "USERNAME": fakeproc_username,
                      "PASSWORD": fakeproc_password, "TIME_SCALE": fakeproc_time_scale,
                      **fakeproc_config})
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def fakeproc(fakeproc_app: Any) -> Controller:
    """Arm faults, read transactions and assert on them, for the test at hand. The store and
    the rules are reset before the test; connectors are back to Default alone."""
    controller = Controller(fakeproc_app)
    controller.reset(connectors=True)
    return controller


@pytest.fixture
def fakeproc_client(fakeproc: Controller, fakeproc_app: Any) -> Any:
    """Flask's test client on the session's app: the processor endpoint without a socket
    (connection faults answer 502 with an X-Fakeproc-Fault header)."""
    return fakeproc_app.test_client()


@dataclass(frozen=True)
class FakeprocServer:
    """Where the session's fakeproc listens, and the Default connector's credentials."""

    url: str
    host: str
    port: int
    username: str | None
    password: str | None
    app: Any

    @property
    def auth(self) -> tuple[str, str] | None:
        """(username, password) for HTTP clients, or None when Default takes any."""
        if self.username is None and self.password is None:
            return None
        return self.username or "", self.password or ""


@pytest.fixture(scope="session")
def _fakeproc_listening(fakeproc_app: Any, fakeproc_host: str,
                        fakeproc_port: int) -> Iterator[Any]:
    from .live_server import ThreadedServer

    with ThreadedServer(fakeproc_app, fakeproc_host, fakeproc_port) as server:
        yield server


@pytest.fixture
def fakeproc_server(_fakeproc_listening: Any, fakeproc: Controller, fakeproc_username: str | None,
                    fakeproc_password: str | None) -> FakeprocServer:
    """fakeproc over real HTTP on a thread of this process (session-wide; reset per test)."""
    server = _fakeproc_listening
    return FakeprocServer(server.url, server.host, server.port, fakeproc_username,
                          fakeproc_password, server.app)


@pytest.fixture
def fakeproc_payload(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Any:
    """Make realistic request bodies: `fakeproc_payload()` is a card charge,
    `fakeproc_payload("tokenize", ach=True, amount=None)` … (see `fakeproc.payloads`).
    Seeded from the `fakeproc_seed` ini option, else from the test's id: reproducible."""
    from .payloads import Payloads

    seed = pytestconfig.getini("fakeproc_seed")
    return Payloads(int(seed) if seed else _stable_seed(request.node.nodeid))


@pytest.fixture
def twilio_call(fakeproc_server: FakeprocServer, fakeproc_time_scale: float) -> Any:
    """Play Twilio for one call to a TwiML app: `twilio_call(app, "/voice", press=[...])`.

    `app` is a WSGI app (a Flask app, pytest-flask's `app`), called in this process, or a base
    URL. Pay Connectors send to this session's fakeproc unless `processor=` or
    `connectors={name: url}` say otherwise; other options are `fakeproc call`'s (`live`,
    `strict`, `auth_token`, `method`, `caller_id`, `called`, `time_scale`). Returns a
    `CallResult` (`.result`, `.said`, `.action_params`, …, `assert_result(...)`)."""
    from urllib.parse import urljoin

    from ..twilio.call import CallOptions, CallResult, HttpApp, WsgiApp, place_call

    def place(app: Any, path: str = "/", press: Any = (), **options: Any) -> CallResult:
        if isinstance(app, str):
            transport, url = HttpApp(), urljoin(app, path)
        else:
            transport, url = WsgiApp(app), urljoin("http://localhost/", path)
        options.setdefault("processor", fakeproc_server.url)
        options.setdefault("time_scale", fakeproc_time_scale)
        if fakeproc_server.auth and options["processor"] == fakeproc_server.url:
            user, password = fakeproc_server.auth
            default = f"http://{user}:{password}@{fakeproc_server.host}:" \
                      f"{fakeproc_server.port}/connectors/Default/"
            options["connectors"] = {"Default": default, **options.get("connectors", {})}
        return CallResult(place_call(transport, url, list(press), CallOptions(**options)))

    return place


def _stable_seed(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())

