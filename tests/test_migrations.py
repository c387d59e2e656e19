"""Schema upgrades: a store made by fakeproc's first schema revision, with the rows that
revision wrote, upgrades in place when a newer fakeproc starts on it (one process, or two at
once), keeps every row, and takes new charges; and the newest migration matches the models."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
import requests
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, text

from fakeproc import create_app
from fakeproc.processor.fingerprints import Fingerprinter
from fakeproc.store.models import db
from fakeproc.store.schema import MIGRATIONS

from conftest import ach_payload, card_payload, make_postgres_database

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
API_TIMEOUT = 30

SCRIPTS = ScriptDirectory(str(MIGRATIONS))
REVISIONS = [script.revision for script in reversed(list(SCRIPTS.walk_revisions()))]
FIRST, HEAD = REVISIONS[0], SCRIPTS.get_current_head()

# The store of the old revision: its fingerprint key, a connector with a password, and the
# transactions QA keeps: a retried charge, a decline, an ACH token, and a charge that a server
# stopped in the middle of (its attempt never closed).
KEY = "5e" * 32
FINGERPRINTS = Fingerprinter(bytes.fromhex(KEY))
SHOP_PASSWORD = "s3cret-shop"
CHARGE_ID = "ch_" + "a1" * 16
TOKEN_ID = "tok_" + "b2" * 16
CHARGE_ANSWER = f'{{"charge_id":"{CHARGE_ID}","error_code":null,"error_message":null}}'
CREATED = datetime(2026, 11, 20, 9, 30, 0, 125000)  # naive UTC, as the columns hold it


def _answer(key: str, result_id: str | None, error_code: str | None = None,
            error_message: str | None = None) -> dict[str, Any]:
    return {key: result_id, "error_code": error_code, "error_message": error_message}


OLD_CHARGE = card_payload(transaction_id="PKold-retried-charge", amount="12.50",
                          description="Order #48213 - 2 x pizza",
                          parameters={"order_ref": "A-7"})
OLD_DECLINE = card_payload(transaction_id="PKold-declined", amount="2001.00")
OLD_TOKEN = ach_payload(method="tokenize", transaction_id="PKold-ach-token", amount=...,
                        currency_code=..., description=...)
OLD_IN_FLIGHT = card_payload(transaction_id="PKold-in-flight", amount="4030.00")


def _at(seconds: float) -> datetime:
    return CREATED + timedelta(seconds=seconds)


def _masked_card(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "cardnumber": "************1111", "cvv": "***"}


def old_rows() -> dict[str, list[dict[str, Any]]]:
    """Rows as the first revision's tables took them, nothing more. Ids come from the
    database, as they did then: 1, 2, 3 in order in the new tables."""
    card = FINGERPRINTS.digest("credit-card:4111111111111111")
    charge_body = _answer("charge_id", CHARGE_ID)
    decline_body = _answer("charge_id", None, "insufficient_funds",
                           "The card has insufficient funds to complete the purchase.")
    token_body = _answer("token_id", TOKEN_ID)
    transaction = {"routing_number": None, "postal_code": "94111", "description": None,
                   "parameters": {}, "orphaned": False, "protocol_violation": False,
                   "settle_by": None, "error_code": None, "error_message": None,
                   "card_brand": "visa", "last4": "1111", "fingerprint": card,
                   "method": "charge", "payment_method": "credit-card", "currency": "USD"}
    attempt = {"gap_seconds": None, "delivery": "response", "status_code": 200, "late": False,
               "protocol_violation": False, "rules": [], "client_ip": "10.1.2.3",
               "user_agent": "TwilioProxy/1.1"}
    return {
        "settings": [{"key": "fingerprint_key", "value": KEY}],
        "connectors": [
            {"unique_name": "Default", "username": None, "password_digest": None,
             "mode": "test", "idempotency": "replay", "magic_values": True,
             "timeout_seconds": 10.0, "created_at": _at(-3600), "updated_at": _at(-3600)},
            {"unique_name": "Shop", "username": "shop",
             "password_digest": FINGERPRINTS.digest("password:" + SHOP_PASSWORD),
             "mode": "open", "idempotency": "duplicate_error", "magic_values": False,
             "timeout_seconds": 7.5, "created_at": _at(-1800), "updated_at": _at(-60)}],
        "transactions": [
            {**transaction, "connector": "Default",
             "transaction_id": OLD_CHARGE["transaction_id"], "status": "succeeded",
             "result_id": CHARGE_ID, "response_status": 200, "response_body": charge_body,
             "amount_millis": 12_500, "description": OLD_CHARGE["description"],
             "parameters": {"order_ref": "A-7"}, "attempt_count": 2, "issued_count": 1,
             "created_at": _at(0), "last_attempt_at": _at(10.2), "settled_at": _at(0.02)},
            {**transaction, "connector": "Default",
             "transaction_id": OLD_DECLINE["transaction_id"], "status": "declined",
             "result_id": None, "response_status": 200, "response_body": decline_body,
             "error_code": "insufficient_funds",
             "error_message": decline_body["error_message"], "amount_millis": 2_001_000,
             "attempt_count": 1, "issued_count": 0, "created_at": _at(60),
             "last_attempt_at": _at(60), "settled_at": _at(60.01)},
            {**transaction, "connector": "Shop",
             "transaction_id": OLD_TOKEN["transaction_id"], "method": "tokenize",
             "payment_method": "ach-debit", "status": "succeeded", "result_id": TOKEN_ID,
             "response_status": 200, "response_body": token_body, "amount_millis": None,
             "currency": None, "card_brand": None, "last4": "89", "postal_code": None,
             "fingerprint": FINGERPRINTS.digest("ach-debit:123456789"),
             "routing_number": "121000358", "parameters": None, "attempt_count": 1,
             "issued_count": 1, "created_at": _at(120), "last_attempt_at": _at(120),
             "settled_at": _at(120.01)},
            {**transaction, "connector": "Default",
             "transaction_id": OLD_IN_FLIGHT["transaction_id"], "status": "in_flight",
             "result_id": None, "response_status": None, "response_body": None,
             "amount_millis": 4_030_000, "attempt_count": 1, "issued_count": 0,
             "settle_by": _at(180 + 60), "created_at": _at(180), "last_attempt_at": _at(180),
             "settled_at": None}],
        "attempts": [
            {**attempt, "transaction_pk": 1, "number": 1, "kind": "original",
             "received_at": _at(0), "responded_at": _at(0.02),
             "response_body": CHARGE_ANSWER, "result_id": CHARGE_ID,
             "request": _masked_card(OLD_CHARGE)},
            {**attempt, "transaction_pk": 1, "number": 2, "kind": "replay",
             "received_at": _at(10.2), "responded_at": _at(10.21), "gap_seconds": 10.2,
             "response_body": CHARGE_ANSWER, "result_id": CHARGE_ID,
             "request": _masked_card(OLD_CHARGE)},
            {**attempt, "transaction_pk": 2, "number": 1, "kind": "original",
             "received_at": _at(60), "responded_at": _at(60.01),
             "response_body": None, "result_id": None, "rules": ["magic:amount"],
             "request": _masked_card(OLD_DECLINE)},
            {**attempt, "transaction_pk": 3, "number": 1, "kind": "original",
             "received_at": _at(120), "responded_at": _at(120.01), "response_body": None,
             "result_id": TOKEN_ID, "client_ip": None, "user_agent": None,
             "request": {**OLD_TOKEN, "bankaccountnumber": "*******89"}},
            {**attempt, "transaction_pk": 4, "number": 1, "kind": "original",
             "received_at": _at(180), "responded_at": None, "delivery": None,
             "status_code": None, "response_body": None, "result_id": None,
             "rules": ["magic:amount"], "request": _masked_card(OLD_IN_FLIGHT)}],
    }


def make_old_store(url: str, revision: str = FIRST,
                   rows: dict[str, list[dict[str, Any]]] | None = None) -> None:
    """A store at `revision`, holding `rows` (default: `old_rows()`) written through the
    tables as the database itself describes them at that revision (so no newer column can
    slip in)."""
    app = create_app({"DATABASE_URL": url, "AUTO_MIGRATE": False, "TESTING": True})
    with app.app_context():
        flask_migrate.upgrade(directory=str(MIGRATIONS), revision=revision)
        with db.engine.begin() as connection:
            tables = MetaData()
            tables.reflect(connection)
            for name, table_rows in (old_rows() if rows is None else rows).items():
                connection.execute(tables.tables[name].insert(), table_rows)
        db.engine.dispose()


def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    url, drop = make_postgres_database()
    request.addfinalizer(drop)
    return url


@pytest.fixture(params=BACKENDS)
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new database at the first revision, with the old rows in it."""
    url = database_url(request.param, tmp_path, request)
    make_old_store(url)
    return url


def read_back(url: str, query: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def get(base: str, path: str) -> Any:
    response = requests.get(base + path, timeout=API_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def post(base: str, body: dict[str, Any], path: str = "/", **kwargs: Any) -> requests.Response:
    return requests.post(base + path, json=body, timeout=API_TIMEOUT, **kwargs)


# -- the revisions themselves ----------------------------------------------------------------

def test_the_revisions_form_one_line_from_the_first_to_the_head():
    assert len(REVISIONS) >= 2, "nothing to upgrade from"
    assert SCRIPTS.get_heads() == [HEAD] and REVISIONS[-1] == HEAD
    assert SCRIPTS.get_base() == FIRST


def test_the_old_store_really_has_the_first_revisions_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    make_old_store(url)
    assert read_back(url, "SELECT version_num FROM alembic_version") == [(FIRST,)]
    tables = {name for (name,) in read_back(
        url, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "rules" not in tables and "attempts" in tables
    attempt_columns = {row[1] for row in read_back(url, "PRAGMA table_info(attempts)")}
    assert "intact" not in attempt_columns


# -- upgrading in place ----------------------------------------------------------------------

@pytest.mark.slow
def test_an_old_store_upgrades_in_place_and_keeps_its_data(old_store, serve):
    server, = serve(old_store)
    assert read_back(old_store, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    assert f"schema upgraded from revision {FIRST} to {HEAD}" in server.log()

    listed = get(server.url, "/api/transactions")["data"]
    assert [t["transaction_id"] for t in listed] == [
        OLD_IN_FLIGHT["transaction_id"], OLD_TOKEN["transaction_id"], OLD_DECLINE["transaction_id"],
        OLD_CHARGE["transaction_id"]]

    charge = get(server.url, f"/api/transactions/{OLD_CHARGE['transaction_id']}")
    assert {k: charge[k] for k in (
        "connector", "method", "payment_method", "status", "charge_id", "amount", "currency",
        "card_brand", "last4", "postal_code", "description", "parameters", "retried",
        "orphaned", "issued", "response", "created_at", "settled_at")} == {
        "connector": "Default", "method": "charge", "payment_method": "credit-card",
        "status": "succeeded", "charge_id": CHARGE_ID, "amount": "12.50", "currency": "USD",
        "card_brand": "visa", "last4": "1111", "postal_code": "94111",
        "description": OLD_CHARGE["description"], "parameters": {"order_ref": "A-7"},
        "retried": True, "orphaned": False, "issued": 1,
        "response": _answer("charge_id", CHARGE_ID),
        "created_at": "2026-11-20T09:30:00.125000Z",
        "settled_at": "2026-11-20T09:30:00.145000Z"}
    first, second = charge["attempts"]
    assert (first["kind"], second["kind"]) == ("original", "replay")
    assert first["response_body"] == CHARGE_ANSWER and first["result_id"] == CHARGE_ID
    assert second["gap_seconds"] == 10.2 and second["received_at"] == "2026-11-20T09:30:10.325000Z"
    for attempt in charge["attempts"]:
        # Columns added since keep their defaults: the old answers were all intact.
        assert attempt["intact"] is True and attempt["delivery"] == "response"
        assert attempt["client_ip"] == "10.1.2.3" and attempt["user_agent"] == "TwilioProxy/1.1"
        assert attempt["request"]["cardnumber"] == "************1111"

    decline = get(server.url, f"/api/transactions/{OLD_DECLINE['transaction_id']}")
    assert (decline["status"], decline["charge_id"], decline["error_code"], decline["amount"]) \
        == ("declined", None, "insufficient_funds", "2001.00")
    assert decline["attempts"][0]["rules"] == ["magic:amount"]
    token = get(server.url,
                f"/api/transactions/{OLD_TOKEN['transaction_id']}?connector=Shop")
    assert (token["token_id"], token["routing_number"], token["last4"], token["amount"]) == (
        TOKEN_ID, "121000358", "89", None)
    assert get(server.url, "/api/connectors/Shop") == {
        "unique_name": "Shop", "username": "shop", "has_password": True, "mode": "open",
        "idempotency": "duplicate_error", "magic_values": False, "timeout_seconds": 7.5}
    assert get(server.url, "/api/connectors/Default")["has_password"] is False
    # The server that was answering it is gone: the attempt ended, the charge never decided.
    stopped = get(server.url, f"/api/transactions/{OLD_IN_FLIGHT['transaction_id']}")
    assert (stopped["status"], stopped["charge_id"], stopped["orphaned"]) == (
        "failed", None, False)
    assert [a["delivery"] for a in stopped["attempts"]] == ["interrupted"]


@pytest.mark.slow
def test_an_upgraded_store_takes_new_writes_and_replays_old_transactions(old_store, serve):
    server, = serve(old_store)
    fresh = post(server.url, card_payload())
    assert fresh.status_code == 200 and fresh.json()["charge_id"].startswith("ch_")

    # A retry of a transaction from before the upgrade gets its original answer ...
    replay = post(server.url, OLD_CHARGE)
    assert replay.status_code == 200 and replay.json() == _answer("charge_id", CHARGE_ID)
    record = get(server.url, f"/api/transactions/{OLD_CHARGE['transaction_id']}")
    assert len(record["attempts"]) == 3 and record["issued"] == 1
    assert record["attempts"][-1]["kind"] == "replay"
    assert record["attempts"][-1]["gap_seconds"] > 0
    # ... and the old fingerprint still tells another card or amount apart.
    refused = post(server.url, {**OLD_CHARGE, "amount": "13.00"}).json()
    assert refused["charge_id"] is None and refused["error_code"] == "duplicate_transaction"
    assert post(server.url, OLD_DECLINE).json()["error_code"] == "insufficient_funds"
    # The charge a stopped server left undecided is decided by its retry, once.
    decided = post(server.url, OLD_IN_FLIGHT).json()  # 4030.00: 30 s (300 ms here), approved
    assert decided["charge_id"].startswith("ch_")
    record = get(server.url, f"/api/transactions/{OLD_IN_FLIGHT['transaction_id']}")
    assert (record["status"], record["issued"], record["charge_id"]) == (
        "succeeded", 1, decided["charge_id"])
    assert [a["delivery"] for a in record["attempts"]] == ["interrupted", "response"]

    # The old connector's password and settings hold.
    shop = ("shop", SHOP_PASSWORD)
    assert post(server.url, OLD_TOKEN, "/connectors/Shop/").status_code == 401
    again = post(server.url, OLD_TOKEN, "/connectors/Shop/", auth=shop).json()
    assert again["token_id"] == TOKEN_ID and again["error_code"] == "duplicate_transaction"

    # Tables the old revision did not have work too: a rule decides the next charge.
    body = card_payload()
    armed = requests.post(server.url + "/api/rules", timeout=API_TIMEOUT, json={
        "match": {"transaction_id": body["transaction_id"]},
        "action": {"type": "decline", "error_code": "card_declined"}})
    assert armed.status_code == 201, armed.text
    assert post(server.url, body).json()["error_code"] == "card_declined"


@pytest.mark.slow
def test_two_servers_starting_at_once_migrate_an_old_store_once(old_store, serve):
    first, second = serve(old_store, count=2)  # both started before either is awaited
    upgraded = [f"schema upgraded from revision {FIRST} to {HEAD}" in process.log()
                for process in (first, second)]
    assert sorted(upgraded) == [False, True]
    assert read_back(old_store, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    assert read_back(old_store, "SELECT count(*) FROM settings WHERE key = 'config_version'") \
        == [(1,)]
    for process in (first, second):
        replay = post(process.url, OLD_CHARGE)
        assert replay.json() == _answer("charge_id", CHARGE_ID)
        assert post(process.url, card_payload()).json()["charge_id"].startswith("ch_")
    record = get(first.url, f"/api/transactions/{OLD_CHARGE['transaction_id']}")
    assert [a["number"] for a in record["attempts"]] == [1, 2, 3, 4] and record["issued"] == 1


# -- rules stored by the release before "a rule holds the whole payment" ------------------

PREVIOUS_RELEASE = "0004"  # the schema of the release whose delivery rules counted attempts
HELD = card_payload(transaction_id="PKold-held-by-a-rule", amount="20.00")


def previous_release_rules() -> list[dict[str, Any]]:
    """Rules as that release's control API and quick-arm stored them."""
    rule = {"probability": 1.0, "enabled": True, "priority": 100, "created_at": _at(-600),
            "updated_at": _at(-600)}
    return [
        {**rule, "match": {}, "action": {"type": "http_error", "status": 503},
         "remaining": 2, "fired": 1, "note": "quick-arm: http_error the next 3"},
        {**rule, "match": {"method": "charge"},
         "action": {"type": "decline", "error_code": "insufficient_funds"}, "remaining": 1,
         "fired": 0, "note": None, "priority": 200},
        {**rule, "match": {"attempt": 1}, "action": {"type": "delay", "seconds": 12.0},
         "remaining": None, "fired": 7, "enabled": False, "note": "first attempts slow"}]


def make_previous_release_store(url: str) -> None:
    """A store at the previous release's revision holding its rules, and a payment whose
    first attempt rule 1 answered with a 503 just before the upgrade."""
    rows = old_rows()
    held = {**rows["transactions"][0], "transaction_id": HELD["transaction_id"],
            "status": "failed", "result_id": None, "response_status": None,
            "response_body": None, "amount_millis": 20_000, "description": None,
            "parameters": {}, "attempt_count": 1, "issued_count": 0, "settled_at": None}
    attempt = {**rows["attempts"][0], "transaction_pk": 1, "kind": "fault", "status_code": 503,
               "response_body": "Service Unavailable", "result_id": None, "intact": False,
               "rules": ["rule:1"], "request": _masked_card(HELD)}
    make_old_store(url, PREVIOUS_RELEASE, {
        "settings": rows["settings"], "connectors": rows["connectors"][:1],
        "rules": previous_release_rules(), "transactions": [held], "attempts": [attempt]})


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_rules_of_the_previous_release_survive_and_now_count_payments(backend, tmp_path,
                                                                      request, serve):
    url = database_url(backend, tmp_path, request)
    make_previous_release_store(url)
    server, = serve(url)

    kept = sorted(get(server.url, "/api/rules")["data"], key=lambda rule: rule["id"])
    assert [{k: rule[k] for k in ("match", "action", "remaining", "fired", "enabled", "priority",
                                  "note")} for rule in kept] == [
        {k: rule[k] for k in ("match", "action", "remaining", "fired", "enabled", "priority",
                              "note")} for rule in previous_release_rules()]

    # The payment rule 1 fired on before the upgrade stays held by it, uncounted.
    assert post(server.url, HELD).status_code == 503
    assert get(server.url, "/api/rules/1")["remaining"] == 2
    # Its 2 remaining firings are 2 payments, each answered 503 on every attempt.
    for left in (1, 0):
        body = card_payload()
        assert [post(server.url, body).status_code for _ in range(3)] == [503] * 3
        assert get(server.url, "/api/rules/1")["remaining"] == left
    # Then the decline rule has its turn, and the disabled one never fires.
    body = card_payload()
    assert post(server.url, body).json()["error_code"] == "insufficient_funds"
    assert post(server.url, card_payload()).json()["charge_id"].startswith("ch_")
    assert get(server.url, "/api/rules/1")["fired"] == 3


# -- the newest migration and the models -----------------------------------------------------

@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request.param, tmp_path, request)


def differences(url: str, revision: str | None = None) -> list[Any]:
    """What `flask db migrate` would write for a database migrated to `revision` (the head
    when None): Alembic's comparison of that schema with the models."""
    app = create_app({"DATABASE_URL": url, "AUTO_MIGRATE": False, "TESTING": True})
    with app.app_context():
        flask_migrate.upgrade(directory=str(MIGRATIONS), revision=revision or "head")
        try:
            with db.engine.connect() as connection:
                # The options of migrations/env.py, which `flask db migrate` uses.
                context = MigrationContext.configure(connection, opts={"compare_type": True})
                return compare_metadata(context, db.metadata)
        finally:
            db.engine.dispose()


def test_the_newest_migration_matches_the_models(empty_url):
    assert differences(empty_url) == []


def test_the_comparison_sees_a_schema_behind_the_models(tmp_path):
    """The check above can fail: one revision short of the head, there is a difference."""
    behind = REVISIONS[-2]
    assert differences(f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}", behind) != []
