"""The OpenAPI description: a valid document, complete, and true to what the server answers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from fakeproc.config import package_version
from fakeproc.web.openapi import build_spec

from conftest import ach_payload, card_payload

SPEC_URI = "urn:fakeproc:openapi"


@pytest.fixture
def spec(client) -> dict[str, Any]:
    """The document as the server serves it."""
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json


def _validator(spec: dict[str, Any], *pointer: str) -> OAS30Validator:
    """A validator for the schema at `pointer` inside the spec, its `$ref`s resolved."""
    registry = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT4))
    escaped = "/".join(part.replace("~", "~0").replace("/", "~1") for part in pointer)
    return OAS30Validator({"$ref": f"{SPEC_URI}#/{escaped}"}, registry=registry,
                          format_checker=oas30_format_checker)


def check(spec: dict[str, Any], response, path: str, method: str = "post") -> None:
    """The response's status is documented for the operation and its body fits the schema."""
    responses = spec["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in responses, f"{method.upper()} {path} answered undocumented {status}"
    content = responses[status].get("content")
    if content is None:
        assert status != "204" or not response.data
        return
    assert response.mimetype in content
    _validator(spec, "paths", path, method, "responses", status, "content", response.mimetype,
               "schema").validate(response.json)
    for name, header in responses[status].get("headers", {}).items():
        assert not header.get("required") or name in response.headers


def request_fits(spec: dict[str, Any], path: str, body: Any, method: str = "post") -> bool:
    schema = ("paths", path, method, "requestBody", "content", "application/json", "schema")
    return _validator(spec, *schema).is_valid(body)


# -- the document ----------------------------------------------------------------------------

def test_spec_is_valid_openapi_3_0(spec):
    validate(spec)
    assert spec["openapi"] == "3.0.3"
    validate(build_spec())  # outside a request too


def test_version_is_the_package_version(client, spec):
    assert spec["info"]["version"] == client.get("/api/health").json["version"]
    assert spec["info"]["version"] == package_version()


def _flask_to_openapi(rule: str) -> str:
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)


def _shape(path: str) -> str:
    """Paths that differ only in their parameter names are the same path (OpenAPI 3)."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_route_is_documented_and_every_operation_routed(app, spec):
    documented = {(_shape(path), verb.upper()) for path, item in spec["paths"].items()
                  for verb in item}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/admin"):
            continue
        routed |= {(_shape(_flask_to_openapi(rule.rule)), verb)
                   for verb in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed == set(), "documented operations with no route"


def test_bearer_security_follows_the_admin_token(make_app):
    """Bearer is documented as required only when the server has an admin token."""
    for config, expected in (({}, [{"bearerAuth": []}, {}]),
                             ({"ADMIN_TOKEN": "s3cret"}, [{"bearerAuth": []}])):
        with make_app(**config).test_request_context():
            paths = build_spec()["paths"]
        assert paths["/api/transactions"]["get"]["security"] == expected
        assert paths["/api/health"]["get"]["security"] == []


# -- the processor endpoint ------------------------------------------------------------------

@pytest.mark.parametrize("path, body, fits", [
    ("/", card_payload(), True),
    ("/", ach_payload(), True),
    ("/", ach_payload(method="tokenize", amount=...), True),
    ("/", card_payload(method="tokenize", amount=None, cvv=None, postal_code=None,
                       description={"any": ["json"]}, extra_field=1), True),
    ("/", card_payload(amount="1000000.000", bankaccountnumber=""), True),
    ("/", card_payload(amount="0999999.5"), True),
    ("/charge", card_payload(method=...), True),
    ("/charge", card_payload(method=None), True),
    ("/tokenize", ach_payload(method=..., amount=...), True),
    ("/", card_payload(method=...), False),
    ("/", card_payload(method="refund"), False),
    ("/", card_payload(amount=...), False),
    ("/", card_payload(amount="1000000.001"), False),
    ("/", card_payload(amount="10.0001"), False),
    ("/", card_payload(amount=10), False),
    ("/", card_payload(transaction_id=""), False),
    ("/", card_payload(transaction_id="x" * 256), False),
    ("/", card_payload(expiry_month=""), False),
    ("/", card_payload(cvv=123), False),
    ("/", card_payload(parameters={"nested": {"no": 1}}), False),
    ("/", card_payload(parameters=[]), False),
    ("/", card_payload(bankaccountnumber="123456789", routingnumber="121000358"), False),
    ("/", card_payload(bankaccountnumber="123456789"), False),
    ("/", ach_payload(routingnumber=""), False),
    ("/", {"method": "charge", "transaction_id": "t", "amount": "1.00"}, False),
    ("/", ["not", "an", "object"], False),
    ("/charge", card_payload(method="tokenize"), False),
    ("/tokenize", card_payload(method="charge"), False),
])
def test_request_schema_matches_what_the_server_accepts(client, spec, path, body, fits):
    """A body the document allows is never a 400, and one it forbids always is."""
    assert request_fits(spec, path, body) is fits
    response = client.post(path, json=body)
    assert (response.status_code != 400) is fits, response.json
    check(spec, response, path)


def test_request_examples_fit_and_are_approved(client, spec):
    for path, item in spec["paths"].items():
        example = item.get("post", {}).get("requestBody", {}).get("content", {}).get(
            "application/json", {}).get("example")
        if example is not None:
            assert request_fits(spec, path, example)
            response = client.post(path.replace("{unique_name}", "Default"), json=example)
            assert response.status_code == 200 and response.json["error_code"] is None


def test_charge_and_tokenize_answers_fit(client, spec):
    charge = client.post("/", json=card_payload())
    assert charge.json["charge_id"].startswith("ch_")
    check(spec, charge, "/")
    token = client.post("/connectors/Default/tokenize", json=ach_payload(method=..., amount=...))
    assert token.json["token_id"].startswith("tok_")
    check(spec, token, "/connectors/{unique_name}/tokenize")


def test_decline_fits(client, spec):
    decline = client.post("/charge", json=card_payload(method=..., amount="2001.00"))
    assert decline.status_code == 200
    assert decline.json["charge_id"] is None
    assert decline.json["error_code"] == "insufficient_funds"
    check(spec, decline, "/charge")


def test_processor_errors_fit(client, spec):
    missing = client.post("/tokenize", json={"transaction_id": "t"})
    assert missing.status_code == 400 and "token_id" in missing.json
    check(spec, missing, "/tokenize")
    not_json = client.post("/", data=b"{nope")
    assert not_json.status_code == 400
    check(spec, not_json, "/")
    unknown = client.post("/connectors/nobody/charge", json=card_payload())
    assert unknown.status_code == 404
    check(spec, unknown, "/connectors/{unique_name}/charge")
    too_large = client.post("/", data=b" " * (65 * 1024))
    assert too_large.status_code == 413
    check(spec, too_large, "/")


def test_unauthorized_fits(client, spec):
    created = client.post("/api/connectors", json={"unique_name": "locked", "username": "u",
                                                   "password": "p"})
    check(spec, created, "/api/connectors")
    refused = client.post("/connectors/locked/", json=card_payload())
    assert refused.status_code == 401
    check(spec, refused, "/connectors/{unique_name}/")
    allowed = client.post("/connectors/locked/", json=card_payload(),
                          headers={"Authorization": "Basic dTpw"})
    check(spec, allowed, "/connectors/{unique_name}/")
    assert allowed.json["error_code"] is None


def test_home_redirect_fits(client, spec):
    check(spec, client.get("/"), "/", "get")


# -- the control API -------------------------------------------------------------------------

def test_transactions_list_and_detail_fit(client, spec):
    body = card_payload()
    client.post("/", json=body)
    client.post("/", json=body)
    client.post("/", json=ach_payload(method="tokenize", amount=...))
    client.post("/", json=card_payload(amount="2000.00"))
    listed = client.get("/api/transactions?limit=2&retried=false")
    assert len(listed.json["data"]) == 2 and listed.json["next_cursor"]
    cursor = spec["components"]["parameters"]["Cursor"]["schema"]
    assert re.search(cursor["pattern"], listed.json["next_cursor"])
    check(spec, listed, "/api/transactions", "get")
    following = client.get(f"/api/transactions?cursor={listed.json['next_cursor']}")
    check(spec, following, "/api/transactions", "get")
    detail = client.get(f"/api/transactions/{body['transaction_id']}")
    assert [attempt["number"] for attempt in detail.json["attempts"]] == [1, 2]
    check(spec, detail, "/api/transactions/{transaction_id}", "get")
    retries = client.get("/api/retries")
    assert retries.json["data"][0]["transaction_id"] == body["transaction_id"]
    check(spec, retries, "/api/retries", "get")


def test_connector_calls_fit(client, spec):
    path = "/api/connectors/{unique_name}"
    check(spec, client.get("/api/connectors"), "/api/connectors", "get")
    check(spec, client.get("/api/connectors/Default"), path, "get")
    check(spec, client.post("/api/connectors", json={"unique_name": "qa"}), "/api/connectors")
    check(spec, client.patch("/api/connectors/qa", json={"mode": "open", "username": None,
                                                         "timeout_seconds": 2}), path, "patch")
    check(spec, client.delete("/api/connectors/qa"), path, "delete")


def test_api_errors_fit(client, spec):
    for response, path, verb in [
        (client.get("/api/transactions?status=lost"), "/api/transactions", "get"),
        (client.get("/api/transactions?cursor=bogus"), "/api/transactions", "get"),
        (client.get("/api/transactions/nothing-here"), "/api/transactions/{transaction_id}",
         "get"),
        (client.post("/api/connectors", json={"unique_name": "Default"}), "/api/connectors",
         "post"),
        (client.patch("/api/connectors/Default", json={"mode": "live"}),
         "/api/connectors/{unique_name}", "patch"),
        (client.delete("/api/connectors/Default"), "/api/connectors/{unique_name}", "delete"),
        (client.post("/api/reset", json={"rules": "yes"}), "/api/reset", "post"),
    ]:
        assert 400 <= response.status_code < 500
        check(spec, response, path, verb)


def test_health_reset_and_openapi_fit(client, spec):
    check(spec, client.get("/api/health"), "/api/health", "get")
    check(spec, client.post("/api/reset"), "/api/reset")
    check(spec, client.get("/api/openapi.json"), "/api/openapi.json", "get")


def test_health_documents_the_time_scale_and_the_connector_timeout(client, spec):
    """Twilio's side reads both from /api/health: they are promised, as numbers; a health
    answer without them does not fit."""
    validator = _validator(spec, "paths", "/api/health", "get", "responses", "200",
                           "content", "application/json", "schema")
    health = client.get("/api/health").json
    validator.validate(health)
    for name in ("time_scale", "connector_timeout_seconds"):
        assert not validator.is_valid({k: v for k, v in health.items() if k != name}), name
        assert not validator.is_valid({**health, name: "10"}), name
        assert not validator.is_valid({**health, name: 0}), name


def test_missing_admin_token_fits(make_app, spec):
    client = make_app(ADMIN_TOKEN="s3cret").test_client()
    refused = client.get("/api/transactions")
    assert refused.status_code == 401
    check(spec, refused, "/api/transactions", "get")
    allowed = client.get("/api/transactions", headers={"Authorization": "Bearer s3cret"})
    check(spec, allowed, "/api/transactions", "get")


# -- rules -------------------------------------------------------------------------------------

RULE = "/api/rules/{rule_id}"
RULE_ACTIONS = [
    {"type": "approve", "parameters": {"risk": "low"}},
    {"type": "decline", "error_code": "do_not_honor", "error_message": "No."},
    {"type": "delay", "seconds": 12, "outcome": {"type": "decline", "error_code": "x"}},
    {"type": "hang"},
    {"type": "hang", "seconds": 30, "charge": True},
    {"type": "drop", "charge": False},
    {"type": "http_error", "status": 503, "body": "busy"},
    {"type": "malformed", "variant": "truncated", "status": 502},
]


def test_rule_calls_fit(client, spec):
    ids = []
    for action in RULE_ACTIONS:
        body = {"action": action, "remaining": 2, "note": "qa"}
        assert request_fits(spec, "/api/rules", body)
        created = client.post("/api/rules", json=body)
        assert created.status_code == 201
        check(spec, created, "/api/rules")
        ids.append(created.json["id"])
    masked = client.post("/api/rules", json={"match": {
        "card_number": "4111111111111111", "cvv": "123", "amount": 10.5, "amount_min": "1",
        "amount_max": "20.125", "method": "charge", "payment_method": "credit-card",
        "card_brand": "visa", "last4": "1111", "currency": "USD", "postal_code": "94111",
        "description_contains": "pizza", "parameters": {"flow": "vip"},
        "transaction_id": "tx-1", "attempt": 2, "connector": "Default"},
        "action": {"type": "approve"}, "priority": -3, "probability": 0.5})
    assert masked.json["match"]["card_number"] == "************1111"
    check(spec, masked, "/api/rules")
    listed = client.get("/api/rules?limit=3")
    assert listed.json["next_cursor"]
    check(spec, listed, "/api/rules", "get")
    check(spec, client.get(f"/api/rules?cursor={listed.json['next_cursor']}"), "/api/rules",
          "get")
    check(spec, client.get(f"/api/rules/{ids[0]}"), RULE, "get")
    update = {"enabled": False, "remaining": None, "priority": 1, "match": {"amount": "1"},
              "action": {"type": "drop"}, "note": None, "probability": None}
    assert request_fits(spec, RULE, update, "patch")
    check(spec, client.patch(f"/api/rules/{ids[0]}", json=update), RULE, "patch")
    check(spec, client.patch(f"/api/rules/{ids[1]}", json={"remaining": 0}), RULE, "patch")
    check(spec, client.delete(f"/api/rules/{ids[0]}"), RULE, "delete")
    check(spec, client.post("/api/reset", json={"rules": True}), "/api/reset")


def test_rule_errors_fit(client, spec):
    rule_id = client.post("/api/rules", json={"action": {"type": "approve"}}).json["id"]
    for response, path, verb in [
        (client.get("/api/rules?limit=0"), "/api/rules", "get"),
        (client.get("/api/rules?cursor=nope"), "/api/rules", "get"),
        (client.post("/api/rules", json={"action": {"type": "boom"}}), "/api/rules", "post"),
        (client.post("/api/rules", data=b"[]"), "/api/rules", "post"),
        (client.post("/api/rules", data=b" " * (65 * 1024)), "/api/rules", "post"),
        (client.get("/api/rules/999999"), RULE, "get"),
        (client.patch("/api/rules/999999", json={"enabled": True}), RULE, "patch"),
        (client.patch(f"/api/rules/{rule_id}", json={"remaining": -1}), RULE, "patch"),
        (client.delete("/api/rules/999999"), RULE, "delete"),
    ]:
        assert 400 <= response.status_code < 500
        check(spec, response, path, verb)


@pytest.mark.parametrize("body, fits", [
    ({"action": {"type": "approve"}}, True),
    ({"match": {}, "action": {"type": "drop"}, "remaining": None, "note": None}, True),
    ({"match": {"amount": "10.00", "amount_min": 5, "amount_max": "1000000"},
      "action": {"type": "approve"}}, True),
    ({"action": {"type": "delay", "seconds": 0.5}, "probability": 0, "enabled": False}, True),
    ({"action": {"type": "malformed", "variant": "empty", "status": 100}}, True),
    ({"action": {"type": "http_error", "status": 599, "charge": True}}, True),
    ({}, False),
    ({"action": {"type": "boom"}}, False),
    ({"action": {"type": "approve", "extra": 1}}, False),
    ({"action": {"type": "delay"}}, False),
    ({"action": {"type": "delay", "seconds": 0}}, False),
    ({"action": {"type": "delay", "seconds": "5"}}, False),
    ({"action": {"type": "delay", "seconds": 5, "outcome": {"type": "drop"}}}, False),
    ({"action": {"type": "hang", "seconds": 3601}}, False),
    ({"action": {"type": "malformed", "variant": "xml"}}, False),
    ({"action": {"type": "http_error", "status": 302}}, False),
    ({"action": {"type": "decline", "error_code": "Bad Code"}}, False),
    ({"action": {"type": "approve"}, "remaining": 0}, False),
    ({"action": {"type": "approve"}, "remaining": True}, False),
    ({"action": {"type": "approve"}, "probability": 1.01}, False),
    ({"action": {"type": "approve"}, "enabled": None}, False),
    ({"action": {"type": "approve"}, "unknown": 1}, False),
    ({"match": {"amount": "-1"}, "action": {"type": "approve"}}, False),
    ({"match": {"amount": "1000000.5"}, "action": {"type": "approve"}}, False),
    ({"match": {"amount": True}, "action": {"type": "approve"}}, False),
    ({"match": {"card_number": "4111 1111"}, "action": {"type": "approve"}}, False),
    ({"match": {"card_brand": "diners"}, "action": {"type": "approve"}}, False),
    ({"match": {"attempt": 0}, "action": {"type": "approve"}}, False),
    ({"match": {"parameters": {"a": 1}}, "action": {"type": "approve"}}, False),
    ({"match": {"what": 1}, "action": {"type": "approve"}}, False),
    ({"match": None, "action": {"type": "approve"}}, False),
])
def test_rule_request_schema_matches_what_the_server_accepts(client, spec, body, fits):
    assert request_fits(spec, "/api/rules", body) is fits
    response = client.post("/api/rules", json=body)
    assert (response.status_code == 201) is fits, response.json
    check(spec, response, "/api/rules")


@pytest.mark.parametrize("body, fits", [
    ({}, True),
    ({"match": None, "action": None, "enabled": None, "remaining": None}, True),
    ({"remaining": 0, "priority": -1000000}, True),
    ({"action": {"type": "hang", "charge": True}}, True),
    ({"remaining": -1}, False),
    ({"priority": 1000001}, False),
    ({"action": {"type": "hang", "charge": "yes"}}, False),
    ({"id": 3}, False),
])
def test_rule_update_schema_matches_what_the_server_accepts(client, spec, body, fits):
    rule_id = client.post("/api/rules", json={"action": {"type": "approve"}}).json["id"]
    assert request_fits(spec, RULE, body, "patch") is fits
    response = client.patch(f"/api/rules/{rule_id}", json=body)
    assert (response.status_code == 200) is fits, response.json
    check(spec, response, RULE, "patch")


def test_fault_attempts_fit(make_app, spec):
    """Attempts that suffered a fault: kind `fault`, `intact` false, hung or dropped."""
    client = make_app(TIME_SCALE=0.001).test_client()
    for amount, kind, delivery in (("4503.00", "fault", "response"),
                                   ("4100.00", "fault", "hung"),
                                   ("4301.00", "original", "dropped"),
                                   ("4300.00", "original", "response")):
        body = card_payload(amount=amount)
        client.post("/", json=body)
        detail = client.get(f"/api/transactions/{body['transaction_id']}")
        attempt = detail.json["attempts"][0]
        assert (attempt["kind"], attempt["delivery"], attempt["intact"]) == (
            kind, delivery, False)
        check(spec, detail, "/api/transactions/{transaction_id}", "get")
    assert "intact" in spec["components"]["schemas"]["Attempt"]["required"]
