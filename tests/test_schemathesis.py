"""Schemathesis against the OpenAPI document the server serves at /api/openapi.json: every
operation of the processor endpoint and the control API, fed schema-valid and schema-violating
requests, in-process (WSGI). Each operation runs on a fresh store and must answer no 5xx, only
documented statuses and content types, bodies and headers that fit the document, 401 without the
admin token, and log nothing at ERROR on the `fakeproc` logger.

The server runs with an admin token, so the document marks the control API as needing it, and
schemathesis checks that a request without it or with a wrong one is refused. The amounts and
`fakeproc_scenario` steps that arm delivery faults (delays, hangs, drops, HTTP errors, broken
bodies) are kept out: those answers are broken on purpose; test_faults.py and
test_magic_values.py cover them.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from fakeproc import create_app
from fakeproc.store.models import db
from fakeproc.web.openapi import build_spec

from conftest import make_postgres_database

TOKEN = "st-admin-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
APP_CONFIG = {"ADMIN_TOKEN": TOKEN, "TIME_SCALE": 0.001}
# Per operation, per generation phase; 23 operations. CI runs these bounds as they are.
EXAMPLES = 30
POSTGRES_EXAMPLES = 15

# A server's NUL-free text: the processor refuses NUL in a body on purpose (PostgreSQL cannot
# store it), and says so in its 400.
# A schema-violating body may also be refused as too large (413): the body limit is 64 KiB, and
# a generated string can pass it (a rule's http_error body of thousands of 4-byte characters).
CONFIG = schemathesis.Config.from_dict({
    "generation": {"mode": "all", "allow-x00": False},
    "phases": {"stateful": {"enabled": False}},
    "auth": {"openapi": {"bearerAuth": {"bearer": TOKEN}}},
    "checks": {"negative_data_rejection": {"expected-statuses": [
        400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5xx"]}},
})


def served_document() -> dict[str, Any]:
    """The document as a server with an admin token serves it (bearer required)."""
    unused = Path(tempfile.gettempdir(), "fakeproc-schemathesis-never-opened.db")
    app = create_app({"DATABASE_URL": f"sqlite:///{unused}", "AUTO_MIGRATE": False,
                      **APP_CONFIG})  # building the document touches no database
    with app.test_request_context("/api/openapi.json"):
        return build_spec()


DOCUMENT = served_document()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


def _decimal(value: Any) -> Decimal | None:
    """A JSON number or a decimal string as a finite Decimal; anything else None."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _arms_a_fault(amount: Any) -> bool:
    """Amounts whose magic values delay, hang, drop or break the answer (README)."""
    value = _decimal(amount) if isinstance(amount, str) else None
    return value is not None and Decimal(4000) <= value < Decimal(4600)


@schema.hook("map_body")
def within_what_the_document_can_say(context: Any, body: Any) -> Any:
    """Bodies as a client that read the whole document sends them: no fault armed on the
    processor endpoint, and a rule's `amount_min` not above its `amount_max`, which the
    document says in words (JSON Schema cannot compare two fields)."""
    if context.operation is None or not isinstance(body, dict):
        return body
    if context.operation.path.startswith("/api/rules"):
        return _amounts_in_order(body)
    if context.operation.path.startswith("/api/"):
        return body
    if _arms_a_fault(body.get("amount")):
        body = {**body, "amount": "10.00"}
    parameters = body.get("parameters")
    if isinstance(parameters, dict) and "fakeproc_scenario" in parameters:
        body = {**body, "parameters": {key: value for key, value in parameters.items()
                                       if key != "fakeproc_scenario"}}
    return body


def _amounts_in_order(body: dict[str, Any]) -> dict[str, Any]:
    match = body.get("match")
    if not isinstance(match, dict):
        return body
    low, high = _decimal(match.get("amount_min")), _decimal(match.get("amount_max"))
    if low is None or high is None or low <= high:
        return body
    return {**body, "match": {**match, "amount_min": match["amount_max"],
                              "amount_max": match["amount_min"]}}


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged_errors() -> Iterator[list[logging.LogRecord]]:
    """What the `fakeproc` logger says at ERROR or above while the test runs."""
    handler = _Errors()
    logger = logging.getLogger("fakeproc")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def app(make_app):
    """A fresh store for each operation, so what one operation armed never reaches another."""
    return make_app(**APP_CONFIG)


def test_the_fuzzed_document_is_the_served_one(app):
    served = app.test_client().get("/api/openapi.json", headers=BEARER)
    assert served.status_code == 200
    assert served.json == DOCUMENT
    operations = {(path, verb) for path, item in DOCUMENT["paths"].items() for verb in item}
    assert ("/", "post") in operations and ("/api/rules/{rule_id}", "patch") in operations
    assert len(operations) == 23


SETTINGS = settings(deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much,
    HealthCheck.data_too_large])


def call_and_validate(case: Any, app: Any, logged_errors: list[logging.LogRecord]) -> None:
    # The checks that send more requests (without the token, with a wrong one) use this app.
    case.operation.app = case.operation.schema.app = app
    case.call_and_validate()
    assert [record.getMessage() for record in logged_errors] == []


@schema.parametrize()
@settings(SETTINGS, max_examples=EXAMPLES)
def test_operation(case, app, logged_errors):
    call_and_validate(case, app, logged_errors)


# -- the control API on PostgreSQL -------------------------------------------------------------
# What SQLite forgives, PostgreSQL refuses: NUL characters in text, integers past 32 bits. One
# database for the module; each operation starts from an emptied store.

@pytest.fixture(scope="module")
def postgres_store() -> Iterator[str]:
    url, drop = make_postgres_database()
    migrated = create_app({"DATABASE_URL": url, **APP_CONFIG})
    with migrated.app_context():
        db.engine.dispose()
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def postgres_app(postgres_store: str) -> Iterator[Any]:
    app = create_app({"DATABASE_URL": postgres_store, "AUTO_MIGRATE": False, **APP_CONFIG})
    client = app.test_client()
    assert client.post("/api/reset", json={"rules": True}, headers=BEARER).status_code == 200
    for connector in client.get("/api/connectors?limit=500", headers=BEARER).json["data"]:
        if connector["unique_name"] != "Default":
            client.delete(f"/api/connectors/{connector['unique_name']}", headers=BEARER)
    client.patch("/api/connectors/Default", headers=BEARER, json=DEFAULT_CONNECTOR)
    yield app
    with app.app_context():
        db.engine.dispose()


DEFAULT_CONNECTOR = {"username": None, "password": None, "mode": "test",
                     "idempotency": "replay", "magic_values": True, "timeout_seconds": 10}


@pytest.mark.postgres
@schema.include(path_regex="^/api/").parametrize()
@settings(SETTINGS, max_examples=POSTGRES_EXAMPLES)
def test_control_api_operation_on_postgres(case, postgres_app, logged_errors):
    call_and_validate(case, postgres_app, logged_errors)


# -- what fuzzing found, pinned ------------------------------------------------------------------
# Each was a 500 (and an ERROR in the log) on PostgreSQL, some on SQLite too, or a document that
# promised what the server refused.

@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def found_client(request, make_app) -> Any:
    if request.param == "sqlite":
        return make_app(**APP_CONFIG).test_client()
    return request.getfixturevalue("postgres_app").test_client()


@pytest.mark.parametrize("method, path, body, status, error", [
    ("get", "/api/transactions?q=a%00", None, 400, "q must not hold a NUL character"),
    ("get", "/api/transactions/tx%00", None, 404, "no transaction 'tx\\x00'"),
    ("get", "/api/connectors/a%00", None, 404, "no connector 'a\\x00'"),
    ("delete", "/api/rules/80979142760691236864", None, 404, "no rule 80979142760691236864"),
    ("get", "/api/rules?cursor=c7afa41c4fadad4", None, 400,
     "cursor is not one this API gave out"),
    ("post", "/api/rules", {"action": {"type": "approve"}, "note": "a\x00"}, 400,
     "note: Value error, must not hold a NUL character"),
    ("post", "/api/rules", {"action": {"type": "approve"}, "remaining": 2**31}, 400,
     "remaining: Input should be less than or equal to 2147483647"),
    ("post", "/api/connectors", {"unique_name": "x", "username": "\x00"}, 400,
     "username: Value error, must not hold a NUL character"),
    ("post", "/api/rules", {"action": {"type": "approve"}, "": 1}, 400,
     '"": Extra inputs are not permitted'),
])
def test_what_fuzzing_found(found_client, logged_errors, method, path, body, status, error):
    response = getattr(found_client, method)(path, json=body, headers=BEARER)
    assert (response.status_code, response.json) == (status, {"error": error})
    assert logged_errors == []


def test_an_empty_cursor_is_the_first_page_as_documented(found_client):
    assert found_client.get("/api/rules?cursor=", headers=BEARER).status_code == 200
    pattern = DOCUMENT["components"]["parameters"]["Cursor"]["schema"]["pattern"]
    assert re.fullmatch(pattern, "") and not re.fullmatch(pattern, "c80000000")
