"""No full card number, CVV or bank account number reaches the database or the log (SPEC §6).

A mixed workload goes through `fakeproc serve --access-log`: every TEST-mode brand, live cards,
ACH, tokenizations, declines, retries and a mismatch, rules matching on card number and CVV,
magic values, faults (delays, hangs, drops, HTTP errors, broken bodies), the demo's Payloads,
card numbers typed into descriptions and parameters, the admin panel's pages and exports. Then
the SQLite file and its -wal/-shm, or a pg_dump of the PostgreSQL database, what the panel
exported, and the server's log are searched for every number and CVV sent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from fakeproc.processor import cards
from fakeproc.testing.payloads import Payloads

from conftest import (
    TEST_SCALE,
    ServeGroup,
    ServeProcess,
    ach_payload,
    card_payload,
    free_port,
    make_postgres_database,
)

pytestmark = pytest.mark.slow

# Distinctive CVVs, so that finding one in the store cannot be a coincidence of other digits.
CVV, AMEX_CVV, RULE_CVV = "739", "8642", "7391"
ACCOUNTS = ("12345678", "123456789", "9876543210123")
LIVE_CARD = "4242424242424242"
RULE_CARD = "5105105105105100"
# A trigger, not a customer's CVV: the attempt names what fired, `magic:cvv=000`.
MAGIC_CVV = "000"


class Secrets:
    """Every card number, CVV and account number the workload sent."""

    def __init__(self) -> None:
        self.numbers = {*cards.TEST_CARDS, LIVE_CARD, RULE_CARD, *ACCOUNTS}
        self.cvvs = {CVV, AMEX_CVV, RULE_CVV}

    def note(self, body: dict[str, Any]) -> dict[str, Any]:
        for field in ("cardnumber", "bankaccountnumber"):
            if body.get(field):
                self.numbers.add(body[field])
        if body.get("cvv") and body["cvv"] != MAGIC_CVV:
            self.cvvs.add(body["cvv"])
        return body

    def found_in(self, blob: str) -> list[str]:
        found = sorted(number for number in self.numbers if number in blob)
        for cvv in sorted(self.cvvs):
            for pattern in (f'"cvv": "{cvv}"', f'"cvv":"{cvv}"', f"cvv={cvv}", f"'cvv': '{cvv}'",
                            f"cvv {cvv}", f"code is {cvv}"):
                if pattern in blob:
                    found.append(pattern)
        return found


class AccessLoggedServe(ServeProcess):
    """`fakeproc serve --access-log`, so every request line lands in the log searched."""

    def __init__(self, database_url: str, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environment = {**os.environ, "FAKEPROC_TIME_SCALE": str(TEST_SCALE)}
        command = [sys.executable, "-m", "fakeproc", "serve", "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", "2", "--access-log",
                   "--database-url", database_url]
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=environment)


def _post(url: str, body: dict[str, Any]) -> int | None:
    """The status, or None when the answer was a dropped or cut-short connection."""
    try:
        return requests.post(url, json=body, timeout=30).status_code
    except requests.RequestException:
        return None


def send_workload(url: str, secrets: Secrets) -> str:
    """Cards, CVVs and accounts in every place a request can carry them; returns what the
    admin panel showed and exported."""
    bodies = []
    for number, brand in cards.TEST_CARDS.items():
        cvv = AMEX_CVV if brand == "amex" else CVV
        bodies.append(card_payload(cardnumber=number, cvv=cvv))
        bodies.append(card_payload(method="tokenize", cardnumber=number, cvv=cvv, amount=...))
    bodies.append(card_payload(cardnumber=LIVE_CARD, cvv=CVV))  # declined, still recorded
    bodies.append(card_payload(description=f"card {LIVE_CARD} typed into the notes",
                               parameters={"note": f"pan {LIVE_CARD}"}, extra_field=LIVE_CARD))
    bodies += [ach_payload(bankaccountnumber=account) for account in ACCOUNTS]
    bodies.append(ach_payload(method="tokenize", amount=..., bankaccountnumber=ACCOUNTS[1]))
    # Magic values: declines, a delay past the timeout, and every kind of broken answer.
    for amount in ("2001.00", "3000.00", "4012.00", "4100.00", "4101.00", "4301.00",
                   "4305.00", "4503.00"):
        bodies.append(card_payload(amount=amount, cvv=CVV))
    bodies.append(card_payload(cvv=MAGIC_CVV))
    bodies.append(card_payload(postal_code="00000", cvv=CVV))
    bodies.append(card_payload(cvv=CVV, parameters={"fakeproc_scenario": "malformed:html"}))
    # The demo's own traffic.
    payloads = Payloads(seed=7, fresh_ids=True)
    bodies += [payloads(), payloads(live=True), payloads(expired=True),
               payloads("tokenize"), payloads(ach=True), payloads(ach=True, live=True),
               payloads("tokenize", ach=True)]
    for body in bodies:
        assert _post(url + "/", secrets.note(body)) in (200, 400, 502, 503, None), body

    # Rules that name a card and a CVV (kept as fingerprints), and faults from rules.
    rules = [{"match": {"card_number": RULE_CARD, "cvv": RULE_CVV},
              "action": {"type": "decline", "error_code": "rule_matched"}},
             {"match": {"card_number": "4111111111111111", "cvv": CVV, "amount": "77.00"},
              "action": {"type": "http_error", "status": 502, "body": "gateway"}},
             {"match": {"transaction_id": "tx-dropped"}, "action": {"type": "drop"}}]
    for rule in rules:
        assert requests.post(url + "/api/rules", json=rule, timeout=30).status_code == 201
    ruled = card_payload(cardnumber=RULE_CARD, cvv=RULE_CVV)
    assert requests.post(url + "/", json=ruled, timeout=30).json()["error_code"] == \
        "rule_matched"
    _post(url + "/", card_payload(cvv=CVV, amount="77.00"))
    _post(url + "/", card_payload(cvv=CVV, transaction_id="tx-dropped"))

    # A retry, and a retry with another amount (a mismatch).
    retried = secrets.note(card_payload(cvv=CVV))
    requests.post(url + "/", json=retried, timeout=30)
    requests.post(url + "/", json=retried, timeout=30)
    requests.post(url + "/", json={**retried, "amount": "99.00"}, timeout=30)

    # Numbers where no card field is: a User-Agent, a query string, and an account number and
    # CVVs typed into a description (one named as a CVV, one only equal to the request's).
    typed = secrets.note(card_payload(
        cvv=CVV, description=f"account {ACCOUNTS[1]}, cvv {CVV}, the code is {CVV}"))
    assert requests.post(url + f"/?ref={LIVE_CARD}", json=typed, timeout=30,
                         headers={"User-Agent": f"shop/1.0 (card {LIVE_CARD})"}).ok
    assert requests.get(url + "/api/transactions", params={"search": ACCOUNTS[2]},
                        timeout=30).ok

    # The panel: what QA reads, and what it exports.
    shown = []
    for page in ("/admin/", "/admin/live", "/admin/transactions", "/admin/retries",
                 "/admin/rules", "/admin/connectors",
                 f"/admin/transactions/{ruled['transaction_id']}",
                 f"/admin/transactions/{retried['transaction_id']}",
                 "/admin/settings/export.csv", "/admin/settings/export.json",
                 f"/api/transactions/{retried['transaction_id']}", "/api/transactions?limit=500",
                 "/api/rules"):
        response = requests.get(url + page, timeout=30)
        assert response.status_code == 200, page
        shown.append(response.text)
    return "\n".join(shown)


def dump_database(url: str) -> str:
    """Every row of every table, as JSON text."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = []
            for table in inspect(connection).get_table_names():
                result = connection.execute(text(f'SELECT * FROM "{table}"'))
                rows += [json.dumps(dict(r._mapping), default=str) for r in result]
            return "\n".join(rows)
    finally:
        engine.dispose()


def pg_dump(url: str) -> str:
    """The database as pg_dump writes it, when pg_dump is here and fits the server; else every
    row as JSON text."""
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    if shutil.which("pg_dump"):
        done = subprocess.run(["pg_dump", "--no-owner", "--dbname", libpq],
                              capture_output=True, text=True, timeout=60, check=False)
        if done.returncode == 0:
            return done.stdout
    return dump_database(url)


def run_workload(database_url: str, tmp_path: Path, secrets: Secrets) -> tuple[str, str]:
    """The workload against one `fakeproc serve --access-log`; (what the panel showed, log)."""
    group = ServeGroup(tmp_path)
    served = AccessLoggedServe(database_url, tmp_path / "serve-access.log")
    group.started.append(served)
    try:
        served.wait_ready()
        shown = send_workload(served.url, secrets)
    finally:
        group.stop()
    log = served.log_path.read_text(errors="replace")
    assert "retry connector=Default" in log  # the log was written, and read here
    assert '"POST / HTTP/1.1" 200' in log  # with the access log
    return shown, log


def test_sqlite_files_panel_and_log_hold_no_card_data(tmp_path: Path):
    database = tmp_path / "store.db"
    secrets = Secrets()
    shown, log = run_workload(f"sqlite:///{database}", tmp_path, secrets)
    stored = dump_database(f"sqlite:///{database}")
    # The dump holds the workload, masked numbers included.
    assert "tx-dropped" in stored and "rule_matched" in stored and "************4242" in stored
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("store.db*"))
    assert secrets.found_in(raw.decode("latin-1")) == []
    assert secrets.found_in(stored) == []
    assert secrets.found_in(shown) == []
    assert secrets.found_in(log) == []


@pytest.mark.postgres
def test_postgresql_dump_panel_and_log_hold_no_card_data(tmp_path: Path):
    url, drop = make_postgres_database()
    secrets = Secrets()
    try:
        shown, log = run_workload(url, tmp_path, secrets)
        dumped = pg_dump(url)
    finally:
        drop()
    assert "tx-dropped" in dumped and "rule_matched" in dumped and "************4242" in dumped
    assert secrets.found_in(dumped) == []
    assert secrets.found_in(shown) == []
    assert secrets.found_in(log) == []


def test_the_stored_request_is_masked(client):
    body = card_payload(cardnumber="378282246310005", cvv=AMEX_CVV,
                        description={"note": f"call back about {LIVE_CARD}"})
    client.post("/", json=body)
    attempt = client.get(f"/api/transactions/{body['transaction_id']}").json["attempts"][0]
    assert attempt["request"]["cardnumber"] == "***********0005"
    assert attempt["request"]["cvv"] == "****"
    assert attempt["request"]["description"] == {"note": "call back about ************4242"}
    ach = ach_payload(bankaccountnumber="123456789")
    client.post("/", json=ach)
    stored = client.get(f"/api/transactions/{ach['transaction_id']}").json
    assert stored["attempts"][0]["request"]["bankaccountnumber"] == "*******89"
    assert stored["last4"] == "89"


@pytest.mark.parametrize("text,stored", [
    ("pan 424242424242 end", "pan ********4242 end"),  # 12 digits: the shortest card-like run
    ("pan 4242424242424242424 end", "pan ***************2424 end"),  # 19
    ("acct 12345678901 end", "acct *********01 end"),  # 11: account-like, last two kept
    ("acct 12345678 end", "acct ******78 end"),  # 8
    ("order 1234567 end", "order 1234567 end"),  # 7 digits are left alone
    ("card 4242 4242 4242 4242.", "card **** **** **** 4242."),
    ("amex 3782-822463-10005", "amex ****-******-*0005"),
    ("on 2026-12-04 at 10:25", "on 2026-12-04 at 10:25"),
    # Digits inside an identifier are part of it: a CallSid keeps its 9-digit run.
    ("call CA91cfa75206bc91f5a575818342a61ca9", "call CA91cfa75206bc91f5a575818342a61ca9"),
    ("CVV: 123, cvc2 4567, security code 0123", "CVV: ***, cvc2 ****, security code ****"),
])
def test_numbers_typed_into_a_description_are_masked_before_they_are_stored(client, text,
                                                                             stored):
    body = card_payload(description=text, parameters={"note": text})
    client.post("/", json=body)
    attempt = client.get(f"/api/transactions/{body['transaction_id']}").json["attempts"][0]
    assert attempt["request"]["description"] == stored
    assert attempt["request"]["parameters"] == {"note": stored}


def test_the_request_s_own_cvv_and_account_are_masked_in_its_free_text_only(client):
    body = card_payload(cvv="2035", expiry_year="2035", amount="2035.00",
                        description="code 2035, not 12035", parameters={"2035": "x"})
    client.post("/", json=body)
    request = client.get(f"/api/transactions/{body['transaction_id']}").json["attempts"][0][
        "request"]
    assert request["description"] == "code ****, not 12035"
    assert request["parameters"] == {"****": "x"}
    # The protocol's own fields keep their digits, even when they equal the CVV.
    assert (request["expiry_year"], request["amount"], request["cvv"]) == ("2035", "2035.00",
                                                                          "****")
    ach = ach_payload(bankaccountnumber="4321", description="acct 4321")
    client.post("/", json=ach)
    stored = client.get(f"/api/transactions/{ach['transaction_id']}").json["attempts"][0]
    assert stored["request"]["description"] == "acct ****"


def test_a_card_number_in_the_user_agent_is_masked_where_it_is_stored(client):
    body = card_payload()
    client.post("/", json=body, headers={
        "User-Agent": "shop/1.0 (4242424242424242) CallSid=CA91cfa75206bc91f5a575818342a61ca9"})
    attempt = client.get(f"/api/transactions/{body['transaction_id']}").json["attempts"][0]
    assert attempt["user_agent"] == \
        "shop/1.0 (************4242) CallSid=CA91cfa75206bc91f5a575818342a61ca9"
