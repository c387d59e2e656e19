"""`fakeproc demo`: realistic <Pay> traffic made with Faker, sent through the real processor
endpoint as Twilio sends it (timeouts, retries), so the store holds what real traffic leaves."""

from __future__ import annotations

import contextlib
import http.client
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from sqlalchemy.engine import make_url

from ..twilio import Connector
from .stories import Journey, Shop

__all__ = ["DemoError", "Journey", "Shop", "Twilio", "run"]

EMBEDDED_TIME_SCALE = 0.01  # 10 s connector timeout → 100 ms: well above a charge's latency
TWILIO_RETRIES = 5  # Twilio retries a request that timed out up to 5 times, same transaction_id
# Configured seconds the longest held story lasts: a 65 s hang after Twilio's last retry at 50 s.
LONGEST_HOLD = 120.0
MAX_HOLDING_SECONDS = 5.0  # real seconds beyond which held stories are left out of the mix
# Many calls pay at once; six at a time keep answers far inside a 100 ms timeout on 2 cores.
SENDERS = 6


class DemoError(Exception):
    """The demo cannot run as asked (server unreachable, credentials missing, …)."""


class Twilio:
    """Twilio's side of the wire (the connector client: its timeout, its retries) and the
    control API of the fakeproc receiving the traffic."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None,
                 admin_token: str | None = None):
        self.parts = urlsplit(url)
        if self.parts.scheme not in ("http", "https") or not self.parts.hostname:
            raise DemoError(f"{url} is not an http:// or https:// URL")
        self.url, self.username, self.password = url, username, password
        self.has_password = bool(password)
        self.connector = self.with_timeout(10.0)
        self.api_headers = {"Content-Type": "application/json"}
        if admin_token:
            self.api_headers["Authorization"] = f"Bearer {admin_token}"

    def with_timeout(self, seconds: float) -> Connector:
        """The connector client, giving each attempt `seconds` (real, already scaled)."""
        connector = Connector(self.url, self.username, self.password, timeout=seconds,
                              retries=TWILIO_RETRIES)
        connector.headers["User-Agent"] = "fakeproc-demo"
        return connector

    def pay(self, journey: Journey) -> None:
        """Send until answered (at most 1 + 5 attempts), then any replays."""
        payment = self.connector.pay(journey.body)
        journey.sent += len(payment.attempts)
        if payment.attempts[-1].status == 401:
            raise DemoError("the processor endpoint answered 401: give the connector's "
                            "--username and --password")
        for _ in range(journey.replays):
            journey.sent += 1
            self.connector.send(journey.body)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A control API call; its JSON answer, or DemoError naming the refusal."""
        data = json.dumps(body).encode() if body is not None else None
        answered = self._exchange(method, "/api" + path, data, self.api_headers, 30.0)
        if answered is None:
            raise DemoError(f"fakeproc at {self.url} does not answer")
        status, raw = answered
        if status == 401:
            raise DemoError("the control API needs an admin token (--admin-token)")
        if status >= 300:
            raise DemoError(f"{method} /api{path} answered {status}: {raw[:200]!r}")
        return json.loads(raw) if raw else None

    def _exchange(self, method: str, path: str, data: bytes | None, headers: dict[str, str],
                  timeout: float) -> tuple[int, bytes] | None:
        """One request on a new connection; None when it timed out or the connection broke."""
        kind = http.client.HTTPSConnection if self.parts.scheme == "https" \
            else http.client.HTTPConnection
        connection = kind(self.parts.hostname, self.parts.port, timeout=timeout)
        try:
            connection.request(method, self.parts.path.rstrip("/") + path, data, headers)
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):  # timeouts, drops, cut-short bodies
            return None
        finally:
            connection.close()


def run(count: int = 120, seed: int | None = None, url: str | None = None,
        database_url: str | None = None, time_scale: float | None = None,
        username: str | None = None, password: str | None = None,
        admin_token: str | None = None,
        progress: Callable[[int], None] | None = None,
        stage: Callable[[str], None] | None = None) -> list[str]:
    """Send `count` transactions to the fakeproc at `url`, or else to one started here on
    `database_url` (default: the store of `fakeproc serve`); the summary's lines.
    `progress` hears of every transaction whose payment has ended, `stage` of the wait for
    held ones after the last."""
    if url is not None:
        twilio = Twilio(url, username, password, admin_token)
        return _send(twilio, count, seed, 1.0 if time_scale is None else time_scale, url,
                     progress, stage)
    scale = EMBEDDED_TIME_SCALE if time_scale is None else time_scale
    config: dict[str, Any] = {"TIME_SCALE": scale}
    if database_url:
        config["DATABASE_URL"] = database_url
    if admin_token:
        config["ADMIN_TOKEN"] = admin_token
    with embedded_server(config) as (base_url, store):
        twilio = Twilio(base_url, username, password, admin_token)
        return _send(twilio, count, seed, scale, store, progress, stage)


@contextlib.contextmanager
def embedded_server(config: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The app served on a free loopback port by a threaded server in this process; yields
    its URL and the store it writes to (password hidden)."""
    from .. import create_app
    from ..store.models import db
    from ..testing.live_server import ThreadedServer

    app = create_app(config)
    store = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).render_as_string(hide_password=True)
    try:
        with ThreadedServer(app) as server:
            yield server.url, store
    finally:
        with app.app_context():
            db.engine.dispose()


def _send(twilio: Twilio, count: int, seed: int | None, scale: float, target: str,
          progress: Callable[[int], None] | None = None,
          stage: Callable[[str], None] | None = None) -> list[str]:
    started = time.monotonic()
    twilio.connector = twilio.with_timeout(_connector(twilio)["timeout_seconds"] * scale)
    holds = LONGEST_HOLD * scale <= MAX_HOLDING_SECONDS
    journeys = Shop(seed).journeys(count, holds)
    rule_ids = [twilio.api("POST", "/rules", j.rule)["id"] for j in journeys if j.rule]
    try:
        with ThreadPoolExecutor(SENDERS) as pool:
            for _ in pool.map(twilio.pay, journeys):
                if progress is not None:
                    progress(1)
        deadline = time.monotonic() + 2 * LONGEST_HOLD * scale + 5.0
        holding = [j for j in journeys if j.holds]
        if holding and stage is not None:
            stage(f"waiting for the {len(holding):,} held transactions to end")
        held = _await_held(twilio, holding, deadline)
    finally:
        for rule_id in rule_ids:
            twilio.api("DELETE", f"/rules/{rule_id}")
    rows = _read_back(twilio, {j.body["transaction_id"] for j in journeys})
    statuses = Counter(row["status"] for row in rows)
    lines = [f"fakeproc demo: {len(rows)} transactions ({sum(j.sent for j in journeys)} "
             f"requests) in {time.monotonic() - started:.1f} s into {target}",
             "  " + ", ".join(f"{status} {n}" for status, n in statuses.most_common()),
             f"  retried {sum(row['retried'] for row in rows)}, "
             f"orphaned {sum(row['orphaned'] for row in rows)}, "
             f"tokenize {sum(row['method'] == 'tokenize' for row in rows)}, "
             f"ACH {sum(row['payment_method'] == 'ach-debit' for row in rows)}"]
    if held:
        lines.append(f"  {held} held transactions had not ended when the demo stopped waiting")
    if not holds:
        lines.append("  no delays or hangs: that server runs in real time (give --time-scale "
                     "when it runs scaled)")
    return lines


def _connector(twilio: Twilio) -> dict[str, Any]:
    """The connector the traffic reaches, picked as the server picks it; refuse early what
    would spoil the mix."""
    rows = twilio.api("GET", "/connectors?limit=500")["data"]
    chosen = next((c for c in rows if twilio.username and c["username"] == twilio.username),
                  None) or next(c for c in rows if c["unique_name"] == "Default")
    name = chosen["unique_name"]
    if chosen["has_password"] and not twilio.has_password:
        raise DemoError(f"connector {name} has a password: give --username and --password")
    if not chosen["magic_values"]:
        raise DemoError(f"connector {name} has magic values off; the demo's declines and "
                        "faults need them")
    return chosen


def _await_held(twilio: Twilio, journeys: list[Journey], deadline: float) -> int:
    """Wait until every attempt of `journeys` has ended (a hang ends on its own after Twilio
    gave up on it): only then does the store say which are orphans. Returns those left."""
    while journeys:
        journeys = [j for j in journeys if not all(
            a["responded_at"] for a in _attempts(twilio, j.body["transaction_id"], j.sent))]
        if not journeys or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return len(journeys)


def _attempts(twilio: Twilio, transaction_id: str, sent: int) -> list[dict[str, Any]]:
    """The attempts recorded so far, padded with open ones up to the `sent` ones."""
    attempts = twilio.api("GET", "/transactions/" + quote(transaction_id, safe=""))["attempts"]
    return attempts + [{"responded_at": None}] * (sent - len(attempts))


def _read_back(twilio: Twilio, wanted: set[str]) -> list[dict[str, Any]]:
    """The demo's transactions from the list API, newest first, so paging stops early."""
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while len(found) < len(wanted):
        query = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = twilio.api("GET", "/transactions?" + urlencode(query))
        found.update((row["transaction_id"], row) for row in page["data"]
                     if row["transaction_id"] in wanted)
        if (cursor := page["next_cursor"]) is None:
            break
    return list(found.values())
