"""The OpenAPI 3.0.3 description of the processor endpoint and the control API (served at
/api/openapi.json). Control API bodies come from the pydantic models in `schemas.py`; the rest
mirrors `wire.py`, `ledger.py` and `web/errors.py`, and tests/test_openapi.py holds it to them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import current_app, has_app_context
from pydantic import BaseModel

from .processor import cards
from .config import package_version
from .store.ledger import STATUSES
from .store.paging import CURSOR, MAX_LIMIT
from .control.schemas import (MAX_INTEGER, ConnectorCreate, ConnectorUpdate, ResetRequest, RuleCreate, RuleUpdate)
from .processor.wire import ACH, CARD, MAX_DEPTH, MAX_ID_LENGTH, MAX_LENGTHS, METHODS

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
TEXT: Schema = {"type": "string", "nullable": True}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
# What wire.parse takes: up to 7 digits and 3 decimals, at most 1000000.
AMOUNT: Schema = {
    "type": "string", "pattern": r"^(?:0?[0-9]{1,6}(?:\.[0-9]{1,3})?|1000000(?:\.0{1,3})?)$",
    "example": "10.00", "description": "Magic values (when the connector has them on): "
    "2000-2999.99 decline (the code by the integer part), 3000-3000.99 processing_error, "
    "4000-4099.99 delay the first attempt by amount - 4000 s, 4100.00 hang (4101.00: and "
    "charge), 4300.00-4307.00 a broken answer, 4400-4599.99 HTTP status amount - 4000."}
CARD_BRANDS = list(cards.BRANDS)
EXAMPLE = {"example": {"method": "charge", "transaction_id": "tx-0001", "amount": "10.00",
                       "cardnumber": "4111111111111111", "cvv": "123", "expiry_month": "08",
                       "expiry_year": "2035", "currency_code": "USD", "postal_code": "94111"}}
ATTEMPT_KINDS = ["original", "mismatch", "replay", "duplicate_error", "reprocess", "fault"]
# Only null: what a `null` option of a combination (a $ref, a oneOf) becomes in OpenAPI 3.0,
# where `nullable` takes effect only next to a `type`.
NULL_ONLY: Schema = {"type": "object", "nullable": True, "enum": [None]}
# A stored decimal as the control API writes it back (a JSON string).
DECIMAL_TEXT: Schema = {"type": "string", "pattern": r"^[0-9]+(?:\.[0-9]{1,3})?$"}


def build_spec() -> Schema:
    models: Schema = {}
    for model in (ConnectorCreate, ConnectorUpdate, ResetRequest, RuleCreate, RuleUpdate):
        models[model.__name__] = _model_schema(model, models)
    _amounts_as_taken(models["RuleMatch"])
    return {
        "openapi": "3.0.3",
        "info": {"title": "fakeproc", "version": package_version(), "description":
                 "A stateful fake payment processor for Twilio's Generic Pay Connector: the "
                 "processor endpoint, and the JSON control API under /api/."},
        "paths": _processor_paths() | _api_paths(),
        "components": {
            "schemas": _processor_schemas() | _ledger_schemas(models) | models
            | _rule_schemas(models),
            "parameters": _parameters(models),
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic", "description": "The "
                              "connector's username and password, if it has a password."},
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "The admin "
                               "token, if the server has one (FAKEPROC_ADMIN_TOKEN)."}},
        },
    }


# -- helpers -------------------------------------------------------------------------------

def _ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _object(properties: Schema, required: list[str] | None = None, **extra: Any) -> Schema:
    """An object schema; every property is required unless `required` says otherwise."""
    required = list(properties) if required is None else required
    return {"type": "object", "properties": properties, **extra} | (
        {"required": required} if required else {})


def _json(schema: Schema, description: str, challenge: str | None = None) -> Schema:
    """A JSON response; `challenge` names the scheme of its `WWW-Authenticate` header."""
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    if challenge:
        response["headers"] = {"WWW-Authenticate": {"required": True, "schema": STRING,
                                                    "description": f"`{challenge} realm=...`"}}
    return response


def _model_schema(model: type[BaseModel], components: Schema) -> Schema:
    """A pydantic model's JSON Schema as OpenAPI 3.0 wants it; nested `$defs` join components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update({name: _oas30(sub) for name, sub in schema.pop("$defs", {}).items()})
    return _oas30(schema)


def _amounts_as_taken(match: Schema) -> None:
    """A rule's amounts: a number, or a decimal string in AMOUNT's form (pydantic's own
    pattern lets a sign and any range through, which the model then refuses); either way at
    most 3 decimal places."""
    def as_taken(option: Schema) -> Schema:
        if option.get("type") == "string":
            return {"type": "string", "pattern": AMOUNT["pattern"]}
        if option.get("type") == "number":
            return option | {"multipleOf": 0.001}
        return option

    for name in ("amount", "amount_min", "amount_max"):
        field = match["properties"][name]
        field["anyOf"] = [as_taken(option) for option in field["anyOf"]]
        field["description"] = "A decimal from 0 to 1000000, at most 3 decimal places." + (
            "" if name == "amount" else " `amount_min` may not be above `amount_max`.")


def _oas30(schema: Any) -> Any:
    """JSON Schema 2020-12 (pydantic) to OpenAPI 3.0: a `null` option becomes `nullable` next
    to a single typed option, else an only-null option; `const` an enum; a numeric
    `exclusiveMinimum`/`exclusiveMaximum` the boolean form."""
    if isinstance(schema, list):
        return [_oas30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: ({name: _oas30(sub) for name, sub in value.items()} if key == "properties"
                 else _oas30(value)) for key, value in schema.items()}
    for key in ("anyOf", "oneOf"):
        if {"type": "null"} in out.get(key, []):
            rest = [option for option in out.pop(key) if option != {"type": "null"}]
            if len(rest) == 1 and "type" in rest[0] and "$ref" not in rest[0]:
                out = rest[0] | out
                out["nullable"] = True
                if "enum" in out:
                    out["enum"] = [*out["enum"], None]
            else:  # `nullable` beside a $ref or a oneOf would be ignored
                out[key] = [*rest, NULL_ONLY]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if type(out.get(exclusive)) in (int, float):
            out[bound], out[exclusive] = out[exclusive], True
    return out


# -- the processor endpoint ----------------------------------------------------------------

def _result_id(prefix: str) -> Schema:
    return {"type": "string", "pattern": f"^{prefix}[0-9a-f]{{32}}$", "nullable": True}


def _processor_schemas() -> Schema:
    field = {"type": "string", "nullable": True}
    filled, blank = {"type": "string", "minLength": 1}, {**field, "maxLength": 0}
    flat = {"not": {"anyOf": [{"type": "object"}, {"type": "array"}]}}
    schemas = {
        "PaymentFields": _object({
            "method": field,
            "transaction_id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
            **dict.fromkeys(("cardnumber", "cvv", "expiry_month", "expiry_year", "currency_code",
                             "postal_code", "bankaccountnumber", "routingnumber"), field),
            **{name: {**field, "maxLength": length} for name, length in MAX_LENGTHS.items()},
            "amount": {**AMOUNT, "nullable": True},
            "description": {"description": f"Any JSON value, nested at most {MAX_DEPTH} "
                            "levels deep; stored."},
            "parameters": {"type": "object", "nullable": True, "additionalProperties": flat,
                           "description": "Flat custom parameters; with magic values on, "
                           "`fakeproc_scenario` runs steps joined by `;`."},
        }, ["transaction_id"], description="Every field Twilio sends; unknown fields are "
           "kept. The body is read as JSON whatever its Content-Type says."),
        "CardFields": _object({"cardnumber": filled, "expiry_month": filled,
                               "expiry_year": filled, "bankaccountnumber": blank},
                              ["cardnumber", "expiry_month", "expiry_year"]),
        "BankFields": _object({"bankaccountnumber": filled, "routingnumber": filled,
                               "cardnumber": blank}, ["bankaccountnumber", "routingnumber"]),
        "Instrument": {"oneOf": [_ref("CardFields"), _ref("BankFields")]},
        "PaymentRequest": {"oneOf": [_ref("ChargeRequest"), _ref("TokenizeRequest")]},
    }
    for method, key, prefix in (("charge", "charge_id", "ch_"), ("tokenize", "token_id", "tok_")):
        name = method.capitalize()
        schemas[f"{name}Request"] = _payment(method, path_method=False)
        schemas[f"Path{name}Request"] = _payment(method, path_method=True)
        schemas[f"{name}Answer"] = _object(
            {key: _result_id(prefix), "error_code": TEXT, "error_message": TEXT,
             "parameters": {"type": "object"}}, [key, "error_code", "error_message"],
            additionalProperties=False)
        schemas[f"{name}Failure"] = _object(
            {key: {**field, "enum": [None]}, "error_code": STRING, "error_message": STRING},
            additionalProperties=False)
    return schemas


def _payment(method: str, path_method: bool) -> Schema:
    """A request body; on /charge and /tokenize, `method` may be absent or null."""
    method_schema = ({"type": "string", "enum": [method, None], "nullable": True} if path_method
                     else {"type": "string", "enum": [method]})
    required = (["amount"] if method == "charge" else []) + ([] if path_method else ["method"])
    own = {"method": method_schema} | ({"amount": AMOUNT} if method == "charge" else {})
    return {"allOf": [_ref("PaymentFields"), _object(own, required), _ref("Instrument")]}


def _processor_operation(method: str | None, pinned: bool) -> Schema:
    names = [method.capitalize()] if method else ["Charge", "Tokenize"]

    def either(suffix: str) -> Schema:
        options = [_ref(name + suffix) for name in names]
        return options[0] if len(options) == 1 else {"oneOf": options}

    failure = either("Failure")
    responses = {
        "200": _json(either("Answer"), "Approved (the id set), or declined: `error_code` and "
                     "`error_message` set, the id null (or, for a retry under the "
                     "`duplicate_error` policy, the original id)."),
        "400": _json(failure, "Not a processor request (`invalid_request`)."),
        "401": _json(failure, "The connector's password is needed (`unauthorized`).", "Basic"),
        "413": _json(failure, "The body is over 64 KiB (`request_too_large`)."),
    }
    if pinned:
        responses["404"] = _json(failure, "No connector by that name (`connector_not_found`).")
    body = {"schema": _ref(f"Path{names[0]}Request")} if method else {
        "schema": _ref("PaymentRequest"), **EXAMPLE}
    return {
        "tags": ["processor"], "security": [{"basicAuth": []}, {}],
        "operationId": (method or "process") + ("Pinned" if pinned else ""),
        "summary": f"{names[0]} (the deprecated path form)" if method else
                   "Charge or tokenize, as the body's `method` says",
        "parameters": [_ref("UniqueName", "parameters")] if pinned else [],
        "requestBody": {"required": True, "content": {"application/json": body}},
        "responses": responses,
    }


def _processor_paths() -> Schema:
    paths = {f"{prefix}/{method or ''}": {"post": _processor_operation(method, bool(prefix))}
             for prefix in ("", "/connectors/{unique_name}") for method in (None, *METHODS)}
    paths["/"]["get"] = {"tags": ["processor"], "operationId": "home", "summary": "The admin "
                         "panel", "responses": {"302": {"description": "To /admin/.", "headers": {
                             "Location": {"required": True, "schema": STRING}}}}}
    return paths


# -- the control API -----------------------------------------------------------------------

def _ledger_schemas(models: Schema) -> Schema:
    ids = {"charge_id": _result_id("ch_"), "token_id": _result_id("tok_")}
    one_id = {"oneOf": [{"required": ["charge_id"]}, {"required": ["token_id"]}]}
    status, maybe_time = {"type": "string", "enum": list(STATUSES)}, {**TIME, "nullable": True}
    nullable_object = {"type": "object", "nullable": True}
    transaction = {
        "transaction_id": STRING, "connector": STRING,
        "method": {"type": "string", "enum": list(METHODS)},
        "payment_method": {"type": "string", "enum": [CARD, ACH]}, "status": status,
        "amount": {"type": "string", "pattern": r"^[0-9]+\.[0-9]{2,3}$", "nullable": True},
        "card_brand": {"type": "string", "enum": [*CARD_BRANDS, None], "nullable": True},
        "last4": {**STRING, "description": "The last 4 digits of a card, 2 of an account."},
        **dict.fromkeys(("error_code", "error_message", "currency", "routing_number",
                         "postal_code"), TEXT),
        "description": {}, "parameters": nullable_object, "response": nullable_object,
        "attempts": {**INTEGER, "description": "How many attempts."}, "issued": INTEGER,
        **dict.fromkeys(("retried", "orphaned", "protocol_violation", "double_charged"), BOOLEAN),
        "created_at": TIME, "settled_at": maybe_time, "last_attempt_at": TIME,
    }
    attempt = {
        "number": {"type": "integer", "minimum": 1},
        "kind": {"type": "string", "enum": ATTEMPT_KINDS, "description": "`original` decided "
                 "the outcome; `replay`, `duplicate_error` answered a retry; `reprocess` decided "
                 "anew; `mismatch` refused a changed payload; `fault` suffered a fault that "
                 "decided nothing (an HTTP error, a hang without charge)."},
        "received_at": TIME, "responded_at": maybe_time,
        "gap_seconds": {"type": "number", "nullable": True},
        "delivery": {"type": "string", "nullable": True,
                     "enum": ["response", "hung", "dropped", "interrupted", None],
                     "description": "How the attempt ended; `interrupted`: its process stopped "
                                    "before it ended; null while open."},
        "status_code": {**INTEGER, "nullable": True},
        "late": BOOLEAN, "protocol_violation": BOOLEAN,
        "intact": {**BOOLEAN, "description": "Whether the answer carried the outcome as a "
                   "processor should (false for a hang, a drop, an HTTP error or a broken "
                   "body)."},
        "rules": {"type": "array", "items": STRING, "description": "What fired: `rule:<id>`, "
                  "`magic:<trigger>`."},
        "request": {**nullable_object, "description": "The body, card data masked."},
        **dict.fromkeys(("result_id", "response_body", "client_ip", "user_agent"), TEXT),
    }
    retry = {
        "transaction_id": STRING, "connector": STRING,
        "attempts": {"type": "integer", "minimum": 2},
        "first_attempt_at": TIME, "last_attempt_at": TIME, "status": status, "orphaned": BOOLEAN,
        "gaps_seconds": {"type": "array", "items": {"type": "number", "nullable": True}},
    }
    fields = models["ConnectorCreate"]["properties"]
    connector = {"unique_name": fields["unique_name"], "username": TEXT, "has_password": BOOLEAN,
                 **{name: fields[name] for name in ("mode", "idempotency", "magic_values",
                                                    "timeout_seconds")}}
    detail = transaction | {"attempts": {"type": "array", "items": _ref("Attempt")}}
    schemas = {
        "Error": _object({"error": STRING}),
        "OpenAPIDocument": _object({}, ["openapi", "info", "paths"]),
        "Health": _object({
            "status": {"type": "string", "enum": ["ok"]}, "version": STRING,
            "time_scale": {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                           "description":
                           "What every delay, hang and the connector timeout are multiplied "
                           "by."},
            "connector_timeout_seconds": {"type": "number", "minimum": 0,
                                          "exclusiveMinimum": True, "description": "Twilio's default 10 s connector "
                                          "timeout under the time scale, in real seconds."}}),
        "Transaction": _object(transaction | ids, list(transaction), **one_id),
        "TransactionDetail": _object(detail | ids, list(detail), **one_id),
        "Attempt": _object(attempt),
        "Retry": _object(retry | ids, list(retry), **one_id),
        "Connector": _object(connector, description="`has_password` stands for the password, "
                             "which is write-only."),
        "ResetResult": _object({"status": {"type": "string", "enum": ["ok"]},
                                "deleted": _object({"transactions": INTEGER, "attempts": INTEGER,
                                                    "rules": INTEGER},
                                                   ["transactions", "attempts"],
                                                   description="How many rows went; `rules` "
                                                   "only when the request cleared them.")}),
    }
    for name in ("Transaction", "Retry", "Connector"):
        schemas[f"{name}Page"] = _object({
            "data": {"type": "array", "items": _ref(name)},
            "next_cursor": {**TEXT, "description": "The `cursor` of the next page, if any."}})
    return schemas


def _rule_schemas(models: Schema) -> Schema:
    """A rule as the control API answers it: card number and CVV masked, decimals as text."""
    match = {name: {key: value for key, value in schema.items()
                    if key not in ("default", "nullable", "title")}
             for name, schema in models["RuleMatch"]["properties"].items()}
    match |= {
        "card_number": {"type": "string", "pattern": r"^\*{12}[0-9]{4}$", "description":
                        "Masked: the number is kept only as a keyed fingerprint and its last 4."},
        "cvv": {"type": "string", "enum": ["***"], "description": "Masked: kept only as a "
                "keyed fingerprint."},
        **dict.fromkeys(("amount", "amount_min", "amount_max"), DECIMAL_TEXT),
    }
    for schema in match.values():  # a stored match leaves out what is unset: no nulls
        if "enum" in schema:
            schema["enum"] = [value for value in schema["enum"] if value is not None]
    rule = {
        "id": {"type": "integer", "minimum": 1},
        "match": _ref("StoredRuleMatch"),
        "action": {key: value for key, value in models["RuleCreate"]["properties"]["action"]
                   .items() if key != "title"},
        "remaining": {"type": "integer", "minimum": 0, "nullable": True, "description":
                      "Payments (transactions) it may still fire on, for every kind of "
                      "action; once fired on a payment it holds that payment's later attempts "
                      "without counting them. Null is forever."},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "enabled": BOOLEAN, "priority": INTEGER, "note": TEXT,
        "fired": {"type": "integer", "minimum": 0,
                  "description": "How many payments it fired on."},
        "live": {**BOOLEAN, "description": "Enabled and not used up."},
        "created_at": TIME, "updated_at": TIME,
    }
    return {
        "StoredRuleMatch": _object(match, [], additionalProperties=False, description="The "
                                   "match as stored; every field given must match."),
        "Rule": _object(rule),
        "RulePage": _object({
            "data": {"type": "array", "items": _ref("Rule")},
            "next_cursor": {**TEXT, "description": "The `cursor` of the next page, if any."}}),
    }


def _parameters(models: Schema) -> Schema:
    name = models["ConnectorCreate"]["properties"]["unique_name"]
    return {
        "UniqueName": {"name": "unique_name", "in": "path", "required": True,
                       "schema": {key: value for key, value in name.items() if key != "title"}},
        "RuleId": {"name": "rule_id", "in": "path", "required": True,
                   "schema": {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER}},
        "Limit": _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                  "default": 50}, "Page size."),
        "Cursor": _query("cursor", {"type": "string", "pattern": f"^(?:{CURSOR.pattern})?$"},
                         "A `next_cursor` this API gave (empty: the first page); others are a "
                         "400."),
    }


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": description}


_API_ERRORS = {400: "The query or body is invalid.", 401: "A Bearer admin token is needed.",
               413: "The body is over 64 KiB."}


def _api_security() -> list[Schema]:
    """Bearer is required when this server has an admin token; with none, the API is open."""
    open_api = has_app_context() and "fakeproc" in current_app.extensions \
        and current_app.extensions["fakeproc"].admin_token is None
    return [{"bearerAuth": []}, {}] if open_api else [{"bearerAuth": []}]


def _api(operation_id: str, summary: str, result: str | None, errors: dict[int, str | None],
         parameters: Sequence[Schema] = (), body: str | None = None, status: int = 200,
         public: bool = False) -> Schema:
    """One control API operation; `result` names its answer's schema (None: an empty body)."""
    responses = {str(status): _json(_ref(result), summary) if result else {"description": summary}}
    for code, text in sorted((({} if public else {401: None}) | errors).items()):
        responses[str(code)] = _json(_ref("Error"), text or _API_ERRORS[code],
                                     "Bearer" if code == 401 else None)
    operation = {"tags": ["control"], "operationId": operation_id, "summary": summary,
                 "security": [] if public else _api_security(), "responses": responses}
    if parameters:
        operation["parameters"] = list(parameters)
    if body:  # a reset may come with no body at all
        operation["requestBody"] = {"required": body != "ResetRequest", "content": {
            "application/json": {"schema": _ref(body)}}}
    return operation


def _api_paths() -> Schema:
    limit, cursor, name, rule_id = (_ref(p, "parameters")
                                    for p in ("Limit", "Cursor", "UniqueName", "RuleId"))
    transaction = {"name": "transaction_id", "in": "path", "required": True, "schema": STRING}
    unknown = {404: "No connector by that name."}
    no_rule = {404: "No rule by that id."}
    # `true` or `false` (also `1`/`0`, in any case): exactly what web/api.py `_flag` takes
    flag = {"type": "string", "pattern": "^(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[01])$",
            "default": "false"}
    filters = [
        _query("transaction_id", STRING, "Exactly this transaction_id."),
        _query("connector", STRING, "Only this connector's transactions."),
        _query("status", {"type": "string", "enum": list(STATUSES)}, "Only this status."),
        _query("method", {"type": "string", "enum": list(METHODS)}, "Only this method."),
        _query("retried", flag, "Only transactions with more than one attempt."),
        _query("orphaned", flag, "Only orphans: charged, but no attempt was answered in time."),
        _query("q", STRING, "A transaction_id, charge or token id, or last 4 digits."),
    ]
    return {
        "/api/health": {"get": _api("health", "Liveness, version and time scale", "Health", {},
                                    public=True)},
        "/api/openapi.json": {"get": _api("openapi", "This document", "OpenAPIDocument", {})},
        "/api/transactions": {"get": _api("listTransactions", "Transactions, newest first",
                                          "TransactionPage", {400: None},
                                          [*filters, limit, cursor])},
        "/api/transactions/{transaction_id}": {"get": _api(
            "getTransaction", "One transaction, with its attempts", "TransactionDetail",
            {400: None, 404: "No such transaction.", 409: "The transaction_id exists on several "
             "connectors; name one with `connector`."},
            [transaction, _query("connector", STRING, "The connector, when ambiguous.")])},
        "/api/retries": {"get": _api("listRetries", "Retried transactions, newest first",
                                     "RetryPage", {400: None}, [limit, cursor])},
        "/api/reset": {"post": _api("reset", "Forget every transaction and attempt; with "
                                    "`rules: true`, every rule too", "ResetResult",
                                    {400: None, 413: None}, body="ResetRequest")},
        "/api/rules": {
            "get": _api("listRules", "Rules, newest first", "RulePage", {400: None},
                        [limit, cursor]),
            "post": _api("createRule", "Arm a rule", "Rule", {400: None, 413: None},
                         body="RuleCreate", status=201)},
        "/api/rules/{rule_id}": {
            "get": _api("getRule", "One rule", "Rule", no_rule, [rule_id]),
            "patch": _api("updateRule", "Change a rule: what is given replaces what was",
                          "Rule", {400: None, 413: None} | no_rule, [rule_id],
                          body="RuleUpdate"),
            "delete": _api("deleteRule", "Delete a rule", None, no_rule, [rule_id],
                           status=204)},
        "/api/connectors": {
            "get": _api("listConnectors", "Connectors, newest first", "ConnectorPage",
                        {400: None}, [limit, cursor]),
            "post": _api("createConnector", "Create a connector", "Connector",
                         {400: None, 409: "A connector by that name exists.", 413: None},
                         body="ConnectorCreate", status=201)},
        "/api/connectors/{unique_name}": {
            "get": _api("getConnector", "One connector", "Connector", unknown, [name]),
            "patch": _api("updateConnector", "Change a connector's settings", "Connector",
                          {400: None, 413: None} | unknown, [name], body="ConnectorUpdate"),
            "delete": _api("deleteConnector", "Delete a connector", None,
                           {409: "Default cannot be deleted."} | unknown, [name], status=204)},
    }
