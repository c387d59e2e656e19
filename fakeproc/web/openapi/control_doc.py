"""The control API in the OpenAPI document: its bodies (the pydantic models of
`control.schemas`), what it answers (as `store.ledger` and `store.rule_rows` write it) and its
operations."""

from __future__ import annotations

from collections.abc import Sequence

from flask import current_app, has_app_context

from ...control.schemas import MAX_INTEGER
from ...processor import BRANDS
from ...processor.wire import ACH, CARD, METHODS
from ...store.ledger import STATUSES
from ...store.paging import CURSOR, MAX_LIMIT
from .processor_doc import AMOUNT, result_id
from .schema_tools import (
    BOOLEAN,
    DECIMAL_TEXT,
    INTEGER,
    STRING,
    TEXT,
    TIME,
    Schema,
    json_,
    object_,
    query_,
    ref,
)

CARD_BRANDS = list(BRANDS)
ATTEMPT_KINDS = ["original", "mismatch", "replay", "duplicate_error", "reprocess", "fault"]


def ledger_schemas(models: Schema) -> Schema:
    ids = {"charge_id": result_id("ch_"), "token_id": result_id("tok_")}
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
    detail = transaction | {"attempts": {"type": "array", "items": ref("Attempt")}}
    schemas = {
        "Error": object_({"error": STRING}),
        "OpenAPIDocument": object_({}, ["openapi", "info", "paths"]),
        "Health": object_({
            "status": {"type": "string", "enum": ["ok"]}, "version": STRING,
            "time_scale": {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                           "description":
                           "What every delay, hang and the connector timeout are multiplied "
                           "by."},
            "connector_timeout_seconds": {
                "type": "number", "minimum": 0, "exclusiveMinimum": True, "description":
                "Twilio's default 10 s connector timeout under the time scale, in real "
                "seconds."}}),
        "Transaction": object_(transaction | ids, list(transaction), **one_id),
        "TransactionDetail": object_(detail | ids, list(detail), **one_id),
        "Attempt": object_(attempt),
        "Retry": object_(retry | ids, list(retry), **one_id),
        "Connector": object_(connector, description="`has_password` stands for the password, "
                             "which is write-only."),
        "ResetResult": object_({"status": {"type": "string", "enum": ["ok"]},
                                "deleted": object_({"transactions": INTEGER, "attempts": INTEGER,
                                                    "rules": INTEGER},
                                                   ["transactions", "attempts"],
                                                   description="How many rows went; `rules` "
                                                   "only when the request cleared them.")}),
    }
    for name in ("Transaction", "Retry", "Connector"):
        schemas[f"{name}Page"] = object_({
            "data": {"type": "array", "items": ref(name)},
            "next_cursor": {**TEXT, "description": "The `cursor` of the next page, if any."}})
    return schemas


def rule_schemas(models: Schema) -> Schema:
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
        "match": ref("StoredRuleMatch"),
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
        "StoredRuleMatch": object_(match, [], additionalProperties=False, description="The "
                                   "match as stored; every field given must match."),
        "Rule": object_(rule),
        "RulePage": object_({
            "data": {"type": "array", "items": ref("Rule")},
            "next_cursor": {**TEXT, "description": "The `cursor` of the next page, if any."}}),
    }


def parameters(models: Schema) -> Schema:
    name = models["ConnectorCreate"]["properties"]["unique_name"]
    return {
        "UniqueName": {"name": "unique_name", "in": "path", "required": True,
                       "schema": {key: value for key, value in name.items() if key != "title"}},
        "RuleId": {"name": "rule_id", "in": "path", "required": True,
                   "schema": {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER}},
        "Limit": query_("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                  "default": 50}, "Page size."),
        "Cursor": query_("cursor", {"type": "string", "pattern": f"^(?:{CURSOR.pattern})?$"},
                         "A `next_cursor` this API gave (empty: the first page); others are a "
                         "400."),
    }
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
    responses = {str(status): json_(ref(result), summary) if result
                 else {"description": summary}}
    for code, text in sorted((({} if public else {401: None}) | errors).items()):
        responses[str(code)] = json_(ref("Error"), text or _API_ERRORS[code],
                                     "Bearer" if code == 401 else None)
    operation = {"tags": ["control"], "operationId": operation_id, "summary": summary,
                 "security": [] if public else _api_security(), "responses": responses}
    if parameters:
        operation["parameters"] = list(parameters)
    if body:  # a reset may come with no body at all
        operation["requestBody"] = {"required": body != "ResetRequest", "content": {
            "application/json": {"schema": ref(body)}}}
    return operation


def api_paths() -> Schema:
    limit, cursor, name, rule_id = (ref(p, "parameters")
                                    for p in ("Limit", "Cursor", "UniqueName", "RuleId"))
    transaction = {"name": "transaction_id", "in": "path", "required": True, "schema": STRING}
    unknown = {404: "No connector by that name."}
    no_rule = {404: "No rule by that id."}
    # `true` or `false` (also `1`/`0`, in any case): exactly what web/api.py `_flag` takes
    flag = {"type": "string", "pattern": "^(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[01])$",
            "default": "false"}
    filters = [
        query_("transaction_id", STRING, "Exactly this transaction_id."),
        query_("connector", STRING, "Only this connector's transactions."),
        query_("status", {"type": "string", "enum": list(STATUSES)}, "Only this status."),
        query_("method", {"type": "string", "enum": list(METHODS)}, "Only this method."),
        query_("retried", flag, "Only transactions with more than one attempt."),
        query_("orphaned", flag, "Only orphans: charged, but no attempt was answered in time."),
        query_("q", STRING, "A transaction_id, charge or token id, or last 4 digits."),
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
            [transaction, query_("connector", STRING, "The connector, when ambiguous.")])},
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


def amounts_as_taken(match: Schema) -> None:
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
