"""The processor endpoint in the OpenAPI document: what `processor.wire` takes and answers."""

from __future__ import annotations

from ...processor.wire import MAX_DEPTH, MAX_ID_LENGTH, MAX_LENGTHS, METHODS
from .schema_tools import STRING, TEXT, Schema, json_, object_, ref

# What wire.parse takes: up to 7 digits and 3 decimals, at most 1000000.
AMOUNT: Schema = {
    "type": "string", "pattern": r"^(?:0?[0-9]{1,6}(?:\.[0-9]{1,3})?|1000000(?:\.0{1,3})?)$",
    "example": "10.00", "description": "Magic values (when the connector has them on): "
    "2000-2999.99 decline (the code by the integer part), 3000-3000.99 processing_error, "
    "4000-4099.99 delay the first attempt by amount - 4000 s, 4100.00 hang (4101.00: and "
    "charge), 4300.00-4307.00 a broken answer, 4400-4599.99 HTTP status amount - 4000."}
EXAMPLE = {"example": {"method": "charge", "transaction_id": "tx-0001", "amount": "10.00",
                       "cardnumber": "4111111111111111", "cvv": "123", "expiry_month": "08",
                       "expiry_year": "2035", "currency_code": "USD", "postal_code": "94111"}}


def result_id(prefix: str) -> Schema:
    return {"type": "string", "pattern": f"^{prefix}[0-9a-f]{{32}}$", "nullable": True}


def processor_schemas() -> Schema:
    field = {"type": "string", "nullable": True}
    filled, blank = {"type": "string", "minLength": 1}, {**field, "maxLength": 0}
    flat = {"not": {"anyOf": [{"type": "object"}, {"type": "array"}]}}
    schemas = {
        "PaymentFields": object_({
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
        "CardFields": object_({"cardnumber": filled, "expiry_month": filled,
                               "expiry_year": filled, "bankaccountnumber": blank},
                              ["cardnumber", "expiry_month", "expiry_year"]),
        "BankFields": object_({"bankaccountnumber": filled, "routingnumber": filled,
                               "cardnumber": blank}, ["bankaccountnumber", "routingnumber"]),
        "Instrument": {"oneOf": [ref("CardFields"), ref("BankFields")]},
        "PaymentRequest": {"oneOf": [ref("ChargeRequest"), ref("TokenizeRequest")]},
    }
    for method, key, prefix in (("charge", "charge_id", "ch_"), ("tokenize", "token_id", "tok_")):
        name = method.capitalize()
        schemas[f"{name}Request"] = _payment(method, path_method=False)
        schemas[f"Path{name}Request"] = _payment(method, path_method=True)
        schemas[f"{name}Answer"] = object_(
            {key: result_id(prefix), "error_code": TEXT, "error_message": TEXT,
             "parameters": {"type": "object"}}, [key, "error_code", "error_message"],
            additionalProperties=False)
        schemas[f"{name}Failure"] = object_(
            {key: {**field, "enum": [None]}, "error_code": STRING, "error_message": STRING},
            additionalProperties=False)
    return schemas


def _payment(method: str, path_method: bool) -> Schema:
    """A request body; on /charge and /tokenize, `method` may be absent or null."""
    method_schema = ({"type": "string", "enum": [method, None], "nullable": True} if path_method
                     else {"type": "string", "enum": [method]})
    required = (["amount"] if method == "charge" else []) + ([] if path_method else ["method"])
    own = {"method": method_schema} | ({"amount": AMOUNT} if method == "charge" else {})
    return {"allOf": [ref("PaymentFields"), object_(own, required), ref("Instrument")]}


def _processor_operation(method: str | None, pinned: bool) -> Schema:
    names = [method.capitalize()] if method else ["Charge", "Tokenize"]

    def either(suffix: str) -> Schema:
        options = [ref(name + suffix) for name in names]
        return options[0] if len(options) == 1 else {"oneOf": options}

    failure = either("Failure")
    responses = {
        "200": json_(either("Answer"), "Approved (the id set), or declined: `error_code` and "
                     "`error_message` set, the id null (or, for a retry under the "
                     "`duplicate_error` policy, the original id)."),
        "400": json_(failure, "Not a processor request (`invalid_request`)."),
        "401": json_(failure, "The connector's password is needed (`unauthorized`).", "Basic"),
        "413": json_(failure, "The body is over 64 KiB (`request_too_large`)."),
    }
    if pinned:
        responses["404"] = json_(failure, "No connector by that name (`connector_not_found`).")
    body = {"schema": ref(f"Path{names[0]}Request")} if method else {
        "schema": ref("PaymentRequest"), **EXAMPLE}
    return {
        "tags": ["processor"], "security": [{"basicAuth": []}, {}],
        "operationId": (method or "process") + ("Pinned" if pinned else ""),
        "summary": f"{names[0]} (the deprecated path form)" if method else
                   "Charge or tokenize, as the body's `method` says",
        "parameters": [ref("UniqueName", "parameters")] if pinned else [],
        "requestBody": {"required": True, "content": {"application/json": body}},
        "responses": responses,
    }


def processor_paths() -> Schema:
    paths = {f"{prefix}/{method or ''}": {"post": _processor_operation(method, bool(prefix))}
             for prefix in ("", "/connectors/{unique_name}") for method in (None, *METHODS)}
    paths["/"]["get"] = {"tags": ["processor"], "operationId": "home", "summary": "The admin "
                         "panel", "responses": {"302": {"description": "To /admin/.", "headers": {
                             "Location": {"required": True, "schema": STRING}}}}}
    return paths
