"""No full card number, CVV or bank account number reaches the database or the log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from conftest import ServeGroup, ach_payload, card_payload, make_postgres_database
from sqlalchemy import create_engine, inspect, text

from fakeproc import cards

pytestmark = pytest.mark.slow

# Distinctive CVVs, so that finding one in the store cannot be a coincidence of other digits.
CVV, AMEX_CVV = "739", "8642"
ACCOUNTS = ("12345678", "123456789", "9876543210123")
LIVE_CARD = "4242424242424242"


def send_everything(url: str) -> None:
    """Cards, CVVs and accounts in every place a request can carry them, retries included."""
    bodies = []
    for number, brand in cards.TEST_CARDS.items():
        cvv = AMEX_CVV if brand == "amex" else CVV
        bodies.append(card_payload(cardnumber=number, cvv=cvv))
        bodies.append(card_payload(method="tokenize", cardnumber=number, cvv=cvv, amount=...))
    bodies.append(card_payload(cardnumber=LIVE_CARD, cvv=CVV))  # declined, still recorded
    bodies.append(card_payload(description=f"card {LIVE_CARD} typed into the notes",
                               parameters={"note": f"pan {LIVE_CARD}"}, extra_field=LIVE_CARD))
    bodies += [ach_payload(bankaccountnumber=account) for account in ACCOUNTS]
    for body in bodies:
        assert requests.post(url + "/", json=body, timeout=30).status_code == 200
    retried = card_payload(cvv=CVV)
    requests.post(url + "/", json=retried, timeout=30)
    requests.post(url + "/", json={**retried, "amount": "99.00"}, timeout=30)  # mismatch


def secrets_in(blob: str) -> list[str]:
    found = [n for n in [*cards.TEST_CARDS, LIVE_CARD, *ACCOUNTS] if n in blob]
    found += [f"cvv {c}" for c in (CVV, AMEX_CVV)
              if f'"cvv": "{c}"' in blob or f'"cvv":"{c}"' in blob]
    return found


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


def test_sqlite_files_and_log_hold_no_card_data(tmp_path: Path):
    database = tmp_path / "store.db"
    group = ServeGroup(tmp_path)
    try:
        (server,) = group(f"sqlite:///{database}", FAKEPROC_TIME_SCALE="0.01")
        send_everything(server.url)
        stored = dump_database(f"sqlite:///{database}")
        assert "tx-" in stored  # the dump really holds the transactions
    finally:
        group.stop()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*"))
    assert secrets_in(raw.decode("latin-1")) == []
    assert secrets_in(stored) == []
    log = "".join(p.read_text(errors="replace") for p in tmp_path.glob("serve-*.log"))
    assert "retry connector=Default" in log  # the log was written, and read here
    assert secrets_in(log) == []


@pytest.mark.postgres
def test_postgresql_rows_hold_no_card_data(tmp_path: Path):
    url, drop = make_postgres_database()
    group = ServeGroup(tmp_path)
    try:
        (server,) = group(url)
        send_everything(server.url)
        stored = dump_database(url)
    finally:
        group.stop()
        drop()
    assert "tx-" in stored
    assert secrets_in(stored) == []


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
