"""The processor endpoint of SPEC §1, driven through the real app.

Routes, connector matching, Basic auth, body parsing, the exact 400/401/404/413 bodies, the
test-mode checks in their order, card brands as stored, and charge/token ids (format, uniqueness,
`FAKEPROC_SEED` reproducibility). Bodies are compared whole; where an id is random its format is
checked first and the real id is put into the expected body.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from conftest import ach_payload, card_payload

ID_PATTERNS = {"charge_id": re.compile(r"^ch_[0-9a-f]{32}$"),
               "token_id": re.compile(r"^tok_[0-9a-f]{32}$")}

# The eight TEST-mode cards of Twilio's Generic Pay Connector page, the brand SPEC §1 derives for
# each, and a CVV of the length that brand needs.
TEST_CARDS = [
    ("4111111111111111", "visa", "123"),
    ("5555555555554444", "mastercard", "123"),
    ("378282246310005", "amex", "1234"),
    ("6011111111111117", "discover", "123"),
    ("3065930009020004", "diners-club", "123"),
    ("3566002020360505", "jcb", "123"),
    ("6200000000000005", "unionpay", "123"),
    ("6771798021000008", "maestro", "123"),
]
DINERS_TEST_CARD = "3065930009020004"
LIVE_VISA = "4242424242424242"  # Luhn-valid, not a TEST-mode card
GOOD_ROUTING = ["121000358", "011000015"]

DECLINE_MESSAGES = {
    "incorrect_number": "The card number is incorrect.",
    "invalid_expiry_month": "The card's expiration month is invalid.",
    "invalid_expiry_year": "The card's expiration year is invalid.",
    "expired_card": "The card has expired.",
    "invalid_cvc": "The card's security code is invalid.",
    "test_mode_live_card": "The card or account is not a test number; "
                           "a connector in test mode accepts only the TEST-mode numbers.",
    "invalid_routing_number": "The bank routing number is invalid.",
}

NOT_JSON = "the body is not valid JSON"
EMPTY = "the body is empty; a JSON object is expected"
NOT_OBJECT = "the body must be a JSON object"
NO_METHOD = "method is required (charge or tokenize)"
BAD_METHOD = "method must be charge or tokenize"
NO_TRANSACTION_ID = "transaction_id is required"
NO_INSTRUMENT = ("neither card fields (cardnumber) nor bank fields "
                 "(bankaccountnumber, routingnumber) were sent")
BAD_AMOUNT = "amount must be a decimal from 0 to 1000000 with at most 3 decimal places"
NOT_FLAT = "parameters must be a flat object"
UNAUTHORIZED = "this connector needs Basic auth with its username and password"

BODY_LIMIT = 64 * 1024

_NOW = datetime.now(timezone.utc)
FUTURE_YEAR = _NOW.year + 3
PAST_YEAR = _NOW.year - 1


# -- helpers ------------------------------------------------------------------------------------

def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in reversed(number)]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2)
                for i, d in enumerate(digits))
    return total % 10 == 0


def with_check_digit(body: str) -> str:
    """`body` completed with the digit that makes its Luhn checksum hold."""
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def raw(body: Any) -> bytes:
    return json.dumps(body).encode()


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def post(client, body: Any, path: str = "/", **kwargs: Any):
    """POST a processor request: a dict is sent as JSON, bytes as they are."""
    if isinstance(body, bytes):
        return client.post(path, data=body, **kwargs)
    kwargs.setdefault("content_type", "application/json")
    return client.post(path, data=raw(body), **kwargs)


def answer_of(response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data()[:500])
    assert response.mimetype == "application/json", response.headers
    return json.loads(response.get_data())


def approved(response, key: str = "charge_id") -> str:
    """Assert an approval with exactly the three keys of SPEC §1; return the id."""
    body = answer_of(response)
    result_id = body.get(key)
    assert isinstance(result_id, str) and ID_PATTERNS[key].fullmatch(result_id), body
    assert body == {key: result_id, "error_code": None, "error_message": None}
    return result_id


def declined(code: str, key: str = "charge_id") -> dict[str, Any]:
    return {key: None, "error_code": code, "error_message": DECLINE_MESSAGES[code]}


def invalid(message: str, key: str = "charge_id") -> dict[str, Any]:
    return {key: None, "error_code": "invalid_request", "error_message": message}


def stored(client, transaction_id: str) -> dict[str, Any]:
    response = client.get(f"/api/transactions/{transaction_id}")
    assert response.status_code == 200, response.get_data()
    return response.json


def create_connector(client, **fields: Any) -> None:
    response = client.post("/api/connectors", json=fields)
    assert response.status_code == 201, response.get_data()


def update_connector(client, name: str, **fields: Any) -> None:
    response = client.patch(f"/api/connectors/{name}", json=fields)
    assert response.status_code == 200, response.get_data()


# -- routes -------------------------------------------------------------------------------------

def test_get_root_redirects_to_the_admin_panel(client):
    response = client.get("/")
    assert response.status_code in (301, 302, 303, 307, 308)
    assert response.headers["Location"].rstrip("/").endswith("/admin")


def test_charge_on_root_answers_a_charge_id(client):
    body = card_payload()
    charge_id = approved(post(client, body))
    detail = stored(client, body["transaction_id"])
    assert (detail["method"], detail["status"], detail["charge_id"]) == (
        "charge", "succeeded", charge_id)


def test_tokenize_on_root_answers_a_token_id(client):
    body = card_payload(method="tokenize", amount=...)
    token_id = approved(post(client, body), "token_id")
    detail = stored(client, body["transaction_id"])
    assert (detail["method"], detail["status"], detail["token_id"]) == (
        "tokenize", "succeeded", token_id)


@pytest.mark.parametrize("path,key", [("/charge", "charge_id"), ("/tokenize", "token_id")])
def test_legacy_path_gives_the_method_when_the_body_has_none(client, path, key):
    body = card_payload(method=..., amount="10.00" if key == "charge_id" else ...)
    approved(post(client, body, path), key)
    assert stored(client, body["transaction_id"])["method"] == path.strip("/")


@pytest.mark.parametrize("path,key", [("/charge", "charge_id"), ("/tokenize", "token_id")])
def test_legacy_path_accepts_a_body_method_that_agrees(client, path, key):
    method = path.strip("/")
    approved(post(client, card_payload(method=method), path), key)


@pytest.mark.parametrize("path,method,key", [
    ("/charge", "tokenize", "charge_id"),
    ("/tokenize", "charge", "token_id"),
    ("/connectors/Default/charge", "tokenize", "charge_id"),
    ("/connectors/Default/tokenize", "charge", "token_id"),
])
def test_body_method_contradicting_the_path_is_400(client, path, method, key):
    body = card_payload(method=method)
    response = post(client, body, path)
    path_method = path.rsplit("/", 1)[-1]
    assert answer_of(response, 400) == invalid(
        f"method {method} contradicts the /{path_method} path", key)
    assert client.get(f"/api/transactions/{body['transaction_id']}").status_code == 404


@pytest.mark.parametrize("path,body_method,key", [
    ("/connectors/Shop/", "charge", "charge_id"),
    ("/connectors/Shop/", "tokenize", "token_id"),
    ("/connectors/Shop", "charge", "charge_id"),
    ("/connectors/Shop/charge", None, "charge_id"),
    ("/connectors/Shop/tokenize", None, "token_id"),
])
def test_connector_paths_pin_the_request_to_that_connector(client, path, body_method, key):
    create_connector(client, unique_name="Shop")
    body = card_payload(method=body_method or ..., amount=... if key == "token_id" else "10.00")
    approved(post(client, body, path), key)
    assert stored(client, body["transaction_id"])["connector"] == "Shop"


@pytest.mark.parametrize("path,key", [
    ("/connectors/Nope/", "charge_id"),
    ("/connectors/Nope/charge", "charge_id"),
    ("/connectors/Nope/tokenize", "token_id"),
])
def test_unknown_connector_in_the_path_is_404_json(client, path, key):
    response = post(client, card_payload(), path)
    assert answer_of(response, 404) == {key: None, "error_code": "connector_not_found",
                                        "error_message": "no connector named Nope"}


# -- connector matching and authentication ------------------------------------------------------

WRONG_CREDENTIALS = [
    pytest.param({}, id="no-authorization"),
    pytest.param(basic("u", "wrong"), id="wrong-password"),
    pytest.param(basic("x", "p"), id="wrong-username"),
    pytest.param(basic("u", ""), id="empty-password"),
    pytest.param(basic("", "p"), id="empty-username"),
    pytest.param(basic("U", "p"), id="username-case"),
    pytest.param({"Authorization": "Bearer p"}, id="bearer"),
    pytest.param({"Authorization": "Basic !!!not-base64"}, id="malformed-basic"),
    pytest.param({"Authorization": "Basic \xe9t\xe9"}, id="non-ascii-basic"),
]


@pytest.mark.parametrize("headers", WRONG_CREDENTIALS)
@pytest.mark.parametrize("path,key", [("/", "charge_id"), ("/tokenize", "token_id")])
def test_password_protected_connector_rejects_wrong_credentials(client, headers, path, key):
    update_connector(client, "Default", username="u", password="p")
    body = card_payload(method=..., amount=...) if key == "token_id" else card_payload()
    response = post(client, body, path, headers=headers)
    assert answer_of(response, 401) == {key: None, "error_code": "unauthorized",
                                        "error_message": UNAUTHORIZED}
    assert response.headers["WWW-Authenticate"].lower().startswith("basic")
    assert client.get(f"/api/transactions/{body['transaction_id']}").status_code == 404


def test_password_protected_connector_accepts_its_credentials(client):
    update_connector(client, "Default", username="u", password="p")
    body = card_payload()
    approved(post(client, body, headers=basic("u", "p")))
    assert stored(client, body["transaction_id"])["connector"] == "Default"


def test_password_protected_connector_rejects_bad_credentials_before_parsing(client):
    update_connector(client, "Default", username="u", password="p")
    response = post(client, b"not json at all")
    assert answer_of(response, 401) == {"charge_id": None, "error_code": "unauthorized",
                                        "error_message": UNAUTHORIZED}


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="none"),
    pytest.param(basic("anyone", "anything"), id="basic"),
    pytest.param({"Authorization": "Bearer xyz"}, id="bearer"),
    pytest.param({"Authorization": "garbage"}, id="garbage"),
    pytest.param({"Authorization": "Basic \xe9t\xe9"}, id="non-ascii-basic"),
])
def test_connector_without_password_accepts_any_request(client, headers):
    body = card_payload()
    approved(post(client, body, headers=headers))
    assert stored(client, body["transaction_id"])["connector"] == "Default"


def test_basic_auth_username_selects_the_connector(client):
    create_connector(client, unique_name="Shop", username="shopuser")
    create_connector(client, unique_name="Vault", username="vaultuser", password="secret")

    open_shop = card_payload()
    approved(post(client, open_shop, headers=basic("shopuser", "whatever")))
    assert stored(client, open_shop["transaction_id"])["connector"] == "Shop"

    vault = card_payload()
    approved(post(client, vault, headers=basic("vaultuser", "secret")))
    assert stored(client, vault["transaction_id"])["connector"] == "Vault"

    wrong = post(client, card_payload(), headers=basic("vaultuser", "nope"))
    assert answer_of(wrong, 401)["error_code"] == "unauthorized"

    nobody = card_payload()
    approved(post(client, nobody, headers=basic("stranger", "x")))
    assert stored(client, nobody["transaction_id"])["connector"] == "Default"


def test_path_beats_the_basic_auth_username(client):
    create_connector(client, unique_name="Shop")
    create_connector(client, unique_name="Vault", username="vaultuser", password="secret")
    body = card_payload()
    approved(post(client, body, "/connectors/Shop/", headers=basic("vaultuser", "secret")))
    assert stored(client, body["transaction_id"])["connector"] == "Shop"
    locked = post(client, card_payload(), "/connectors/Vault/")
    assert answer_of(locked, 401)["error_code"] == "unauthorized"


# -- request body parsing -----------------------------------------------------------------------

@pytest.mark.parametrize("content_type", [
    None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
    "application/json", "application/json; charset=utf-8", "application/octet-stream",
])
def test_body_is_parsed_as_json_whatever_the_content_type(client, content_type):
    body = card_payload(description="pizza & salad = dinner")
    headers = {"Content-Type": content_type} if content_type else {}
    approved(client.post("/", data=raw(body), headers=headers))
    assert stored(client, body["transaction_id"])["description"] == "pizza & salad = dinner"


def test_twilio_example_bodies_are_accepted(client):
    """The exact bodies of the Generic Pay Connector page (amount "10.0", year "27")."""
    charge = {"method": "charge", "transaction_id": "twilio-page-charge",
              "cardnumber": "4111111111111111", "cvv": "123", "amount": "10.0",
              "currency_code": "USD", "expiry_month": "08", "expiry_year": "27",
              "description": "pizza", "postal_code": "94111",
              "parameters": {"customer_defined_key_1": "customer_defined_value_1",
                             "customer_defined_key_2": "customer_defined_value_2"}}
    tokenize = {key: value for key, value in charge.items()
                if key not in ("amount", "currency_code")} | {
        "method": "tokenize", "transaction_id": "twilio-page-tokenize"}
    approved(post(client, charge))
    approved(post(client, tokenize), "token_id")
    detail = stored(client, "twilio-page-charge")
    assert (detail["amount"], detail["currency"]) == ("10.00", "USD")
    assert detail["parameters"] == charge["parameters"]


def _padded(size: int, **overrides: Any) -> bytes:
    """A valid charge body of exactly `size` bytes (the description is padding)."""
    body = card_payload(description="", **overrides)
    body["description"] = "a" * (size - len(raw(body)))
    encoded = raw(body)
    assert len(encoded) == size
    return encoded


def test_body_of_exactly_64_kib_is_accepted(client):
    approved(post(client, _padded(BODY_LIMIT), content_type="application/json"))


@pytest.mark.parametrize("path,key", [("/", "charge_id"), ("/charge", "charge_id"),
                                      ("/tokenize", "token_id"),
                                      ("/connectors/Default/", "charge_id")])
def test_body_over_64_kib_is_413_json(client, path, key):
    response = post(client, _padded(BODY_LIMIT + 1), path, content_type="application/json")
    body = answer_of(response, 413)
    assert set(body) == {key, "error_code", "error_message"}
    assert body[key] is None
    assert body["error_code"] == "request_too_large"
    assert isinstance(body["error_message"], str) and body["error_message"]


@pytest.mark.parametrize("path,method,key", [
    ("/", "charge", "charge_id"), ("/tokenize", "tokenize", "token_id"),
    ("/connectors/Default/tokenize", "tokenize", "token_id")])
def test_an_unexpected_failure_is_a_logged_500_in_the_processor_shape(app, client, path, method,
                                                                      key, caplog, monkeypatch):
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(app.extensions["fakeproc"].processor, "handle", broken)
    body = answer_of(post(client, card_payload(method=method), path), 500)
    assert body == {key: None, "error_code": "http_error",
                    "error_message": "fakeproc hit an internal error; see its log"}
    [logged] = [record for record in caplog.records if record.exc_info]
    assert logged.getMessage() == f"unhandled error on POST {path}"
    assert "the disk went away" in str(logged.exc_info[1])


BAD_REQUESTS = [
    # not JSON, not an object
    pytest.param(b"not json", NOT_JSON, id="not-json"),
    pytest.param(b'{"method": "charge", "transaction_id": "t"', NOT_JSON, id="truncated"),
    pytest.param(b"\xff\xfe\x00garbage", NOT_JSON, id="binary"),
    pytest.param(b"", EMPTY, id="empty"),
    pytest.param(b"  \r\n\t ", EMPTY, id="whitespace"),
    pytest.param(b"[]", NOT_OBJECT, id="array"),
    pytest.param(raw([card_payload()]), NOT_OBJECT, id="array-of-a-request"),
    pytest.param(b'"charge"', NOT_OBJECT, id="string"),
    pytest.param(b"null", NOT_OBJECT, id="null"),
    pytest.param(b"42", NOT_OBJECT, id="number"),
    pytest.param(b"true", NOT_OBJECT, id="boolean"),
    # NaN and the infinities are not JSON
    pytest.param(raw(card_payload())[:-1] + b', "amount": NaN}', NOT_JSON, id="NaN-amount"),
    pytest.param(raw(card_payload(description=float("nan"))), NOT_JSON, id="NaN-description"),
    pytest.param(raw(card_payload(description=float("inf"))), NOT_JSON, id="Infinity"),
    pytest.param(raw(card_payload(description=float("-inf"))), NOT_JSON, id="-Infinity"),
    # method
    pytest.param(raw(card_payload(method=...)), NO_METHOD, id="no-method"),
    pytest.param(raw(card_payload(method=None)), NO_METHOD, id="null-method"),
    pytest.param(raw(card_payload(method="refund")), BAD_METHOD, id="unknown-method"),
    pytest.param(raw(card_payload(method="")), BAD_METHOD, id="empty-method"),
    pytest.param(raw(card_payload(method=1)), BAD_METHOD, id="number-method"),
    # transaction_id
    pytest.param(raw(card_payload(transaction_id=...)), NO_TRANSACTION_ID, id="no-transaction-id"),
    pytest.param(raw(card_payload(transaction_id=None)), NO_TRANSACTION_ID,
                 id="null-transaction-id"),
    pytest.param(raw(card_payload(transaction_id="")), NO_TRANSACTION_ID,
                 id="empty-transaction-id"),
    # neither card nor bank fields
    pytest.param(raw(card_payload(cardnumber=...)), NO_INSTRUMENT, id="no-cardnumber"),
    pytest.param(raw(card_payload(cardnumber=None)), NO_INSTRUMENT, id="null-cardnumber"),
    pytest.param(raw({"method": "charge", "transaction_id": "t", "amount": "10.00"}),
                 NO_INSTRUMENT, id="no-instrument"),
    # amount: not a decimal from 0 to 1,000,000
    *[pytest.param(raw(card_payload(amount=amount)), BAD_AMOUNT, id=f"amount-{amount!r}")
      for amount in ("ten", "-5", "1e3", "10.0001", "", " 10.00", "10,00", "0x10", "NaN",
                     "Infinity", "1000000.01", "1000001", "99999999")],
    # a field of the wrong JSON type
    pytest.param(raw(card_payload(amount=10.0)), "amount must be a string", id="amount-float"),
    pytest.param(raw(card_payload(amount=10)), "amount must be a string", id="amount-int"),
    pytest.param(raw(card_payload(cardnumber=4111111111111111)), "cardnumber must be a string",
                 id="cardnumber-int"),
    pytest.param(raw(card_payload(transaction_id=42)), "transaction_id must be a string",
                 id="transaction-id-int"),
    pytest.param(raw(card_payload(cvv=123)), "cvv must be a string", id="cvv-int"),
    pytest.param(raw(card_payload(expiry_month=8)), "expiry_month must be a string",
                 id="expiry-month-int"),
    pytest.param(raw(card_payload(expiry_year=["2035"])), "expiry_year must be a string",
                 id="expiry-year-list"),
    pytest.param(raw(card_payload(currency_code={"code": "USD"})),
                 "currency_code must be a string", id="currency-object"),
    pytest.param(raw(card_payload(postal_code=94111)), "postal_code must be a string",
                 id="postal-code-int"),
    pytest.param(raw(ach_payload(bankaccountnumber=123456789)),
                 "bankaccountnumber must be a string", id="account-int"),
    pytest.param(raw(ach_payload(routingnumber=True)), "routingnumber must be a string",
                 id="routing-bool"),
    pytest.param(raw(card_payload(parameters=["a", "b"])), NOT_FLAT, id="parameters-list"),
    pytest.param(raw(card_payload(parameters="a=b")), NOT_FLAT, id="parameters-string"),
    pytest.param(raw(card_payload(parameters={"a": {"b": "c"}})), NOT_FLAT,
                 id="parameters-nested"),
]


@pytest.mark.parametrize("body,message", BAD_REQUESTS)
def test_not_a_processor_request_is_400(client, body, message):
    response = post(client, body, content_type="application/json")
    assert answer_of(response, 400) == invalid(message)


@pytest.mark.parametrize("path", ["/charge", "/connectors/Default/", "/connectors/Default/charge"])
@pytest.mark.parametrize("body,message", [
    pytest.param(b"{not json", NOT_JSON, id="not-json"),
    pytest.param(raw(card_payload(method="charge", amount="ten")), BAD_AMOUNT, id="bad-amount"),
    pytest.param(raw(card_payload(method="charge", transaction_id=...)), NO_TRANSACTION_ID,
                 id="no-transaction-id"),
])
def test_other_charge_paths_answer_the_same_400(client, path, body, message):
    assert answer_of(post(client, body, path), 400) == invalid(message)


@pytest.mark.parametrize("path,body,message", [
    pytest.param("/tokenize", b"", EMPTY, id="legacy-empty"),
    pytest.param("/tokenize", b"{", NOT_JSON, id="legacy-not-json"),
    pytest.param("/connectors/Default/tokenize", b"[1]", NOT_OBJECT, id="pinned-array"),
    pytest.param("/", raw(card_payload(method="tokenize", transaction_id=..., amount=...)),
                 NO_TRANSACTION_ID, id="root-no-transaction-id"),
    pytest.param("/", raw(card_payload(method="tokenize", cardnumber=..., amount=...)),
                 NO_INSTRUMENT, id="root-no-instrument"),
    pytest.param("/tokenize", raw(card_payload(method=..., amount=...,
                                               cardnumber=4111111111111111)),
                 "cardnumber must be a string", id="legacy-wrong-type"),
])
def test_a_bad_tokenize_request_has_a_null_token_id(client, path, body, message):
    response = post(client, body, path)
    assert answer_of(response, 400) == invalid(message, "token_id")


def test_unknown_extra_fields_are_accepted_and_kept(client):
    body = card_payload(x_merchant_ref="order-17", x_flags={"gift": True, "items": ["pizza"]})
    approved(post(client, body))
    [attempt] = stored(client, body["transaction_id"])["attempts"]
    assert attempt["request"]["x_merchant_ref"] == "order-17"
    assert attempt["request"]["x_flags"] == {"gift": True, "items": ["pizza"]}


@pytest.mark.parametrize("description", [
    "pizza", None, {"item": "pizza", "size": "large", "qty": 2}, ["pizza", "salad"], 17, True,
])
def test_description_may_be_any_json_and_is_stored(client, description):
    body = card_payload(description=description)
    approved(post(client, body))
    assert stored(client, body["transaction_id"])["description"] == description


def test_null_postal_code_is_accepted(client):
    body = card_payload(postal_code=None)
    approved(post(client, body))
    assert stored(client, body["transaction_id"])["postal_code"] is None


def test_parameters_are_stored_and_not_echoed(client):
    parameters = {"customer_defined_key_1": "customer_defined_value_1", "order": "A-17"}
    body = card_payload(parameters=parameters)
    approved(post(client, body))  # exactly three keys: no "parameters" without a rule
    assert stored(client, body["transaction_id"])["parameters"] == parameters


def test_missing_parameters_and_currency_are_accepted(client):
    body = card_payload(parameters=..., currency_code=..., postal_code=..., description=...)
    approved(post(client, body))


@pytest.mark.parametrize("field", [
    "transaction_id", "cardnumber", "cvv", "currency_code", "postal_code", "description",
    "bankaccountnumber", "routingnumber",
])
def test_lone_surrogate_escape_in_a_field_is_never_a_500(client, field):
    """`"\\ud800"` is a legal JSON escape but no Unicode character: 200 or 400, never 500."""
    base = ach_payload() if field in ("bankaccountnumber", "routingnumber") else card_payload()
    body = base | {field: base.get(field, "x") + "\ud800"}
    response = post(client, body)
    assert response.status_code in (200, 400), response.get_data()[:300]
    answer = answer_of(response, response.status_code)
    assert set(answer) == {"charge_id", "error_code", "error_message"}


@pytest.mark.parametrize("depth", [100, 600, 950])
@pytest.mark.parametrize("field", ["description", "x_extra"])
def test_deeply_nested_json_is_never_a_500(client, field, depth):
    """A few hundred nested arrays fit easily in 64 KiB."""
    body = raw(card_payload())[:-1] + f', "{field}": '.encode() + b"[" * depth + b"]" * depth + b"}"
    response = post(client, body)
    assert response.status_code in (200, 400), response.get_data()[:300]
    answer = answer_of(response, response.status_code)
    assert set(answer) == {"charge_id", "error_code", "error_message"}


# -- what a processor in test mode checks -------------------------------------------------------

@pytest.mark.parametrize("number,brand,cvv", TEST_CARDS, ids=[c[1] for c in TEST_CARDS])
def test_test_card_is_approved_and_its_brand_stored(client, number, brand, cvv):
    body = card_payload(cardnumber=number, cvv=cvv)
    charge_id = approved(post(client, body))
    detail = stored(client, body["transaction_id"])
    assert (detail["card_brand"], detail["last4"], detail["payment_method"]) == (
        brand, number[-4:], "credit-card")
    assert detail["charge_id"] == charge_id


@pytest.mark.parametrize("number,brand,cvv", TEST_CARDS, ids=[c[1] for c in TEST_CARDS])
def test_test_card_is_tokenized(client, number, brand, cvv):
    body = card_payload(method="tokenize", amount=..., cardnumber=number, cvv=cvv)
    approved(post(client, body), "token_id")
    assert stored(client, body["transaction_id"])["card_brand"] == brand


def test_diners_test_card_fails_luhn_yet_is_accepted(client):
    assert not luhn_valid(DINERS_TEST_CARD)
    body = card_payload(cardnumber=DINERS_TEST_CARD)
    approved(post(client, body))
    assert stored(client, body["transaction_id"])["card_brand"] == "diners-club"


@pytest.mark.parametrize("expiry_year", [f"{FUTURE_YEAR % 100:02d}", str(FUTURE_YEAR)])
def test_two_and_four_digit_expiry_years_are_accepted(client, expiry_year):
    approved(post(client, card_payload(expiry_year=expiry_year)))


@pytest.mark.parametrize("digits", [2, 4])
def test_card_is_good_through_its_expiry_month(client, digits):
    now = datetime.now(timezone.utc)
    year = str(now.year) if digits == 4 else f"{now.year % 100:02d}"
    approved(post(client, card_payload(expiry_month=f"{now.month:02d}", expiry_year=year)))


def _last_month() -> tuple[str, str]:
    now = datetime.now(timezone.utc)
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return f"{month:02d}", str(year)


SINGLE_FAILURES = [
    pytest.param({"cardnumber": "4111111111111112"}, "incorrect_number", id="luhn-visa"),
    pytest.param({"cardnumber": "4242424242424241"}, "incorrect_number", id="luhn-4242"),
    pytest.param({"cardnumber": "4111 1111 1111 1111"}, "incorrect_number", id="spaces"),
    pytest.param({"cardnumber": "not-a-card"}, "incorrect_number", id="letters"),
    pytest.param({"expiry_month": "13"}, "invalid_expiry_month", id="month-13"),
    pytest.param({"expiry_month": "00"}, "invalid_expiry_month", id="month-00"),
    pytest.param({"expiry_month": "ab"}, "invalid_expiry_month", id="month-letters"),
    pytest.param({"expiry_month": "1" * 5000}, "invalid_expiry_month", id="month-5000-digits"),
    pytest.param({"expiry_year": "203"}, "invalid_expiry_year", id="year-3-digits"),
    pytest.param({"expiry_year": "next"}, "invalid_expiry_year", id="year-letters"),
    pytest.param({"expiry_month": "01", "expiry_year": str(PAST_YEAR)}, "expired_card",
                 id="last-year"),
    pytest.param({"expiry_month": "12", "expiry_year": f"{(PAST_YEAR - 3) % 100:02d}"},
                 "expired_card", id="two-digit-past-year"),
    pytest.param(dict(zip(("expiry_month", "expiry_year"), _last_month())), "expired_card",
                 id="last-month"),
    pytest.param({"cvv": "12"}, "invalid_cvc", id="cvv-2-digits"),
    pytest.param({"cvv": "1234"}, "invalid_cvc", id="cvv-4-digits-visa"),
    pytest.param({"cvv": "12a"}, "invalid_cvc", id="cvv-letters"),
    pytest.param({"cardnumber": "378282246310005", "cvv": "123"}, "invalid_cvc",
                 id="amex-needs-4"),
    pytest.param({"cardnumber": "378282246310005", "cvv": "12345"}, "invalid_cvc",
                 id="amex-5-digits"),
    pytest.param({"cardnumber": LIVE_VISA}, "test_mode_live_card", id="live-visa"),
    pytest.param({"cardnumber": with_check_digit("510510510510510")}, "test_mode_live_card",
                 id="live-mastercard"),
]


@pytest.mark.parametrize("overrides,code", SINGLE_FAILURES)
def test_card_decline(client, overrides, code):
    body = card_payload(**overrides)
    assert answer_of(post(client, body)) == declined(code)
    assert stored(client, body["transaction_id"])["status"] == "declined"


@pytest.mark.parametrize("cvv", [..., None, ""], ids=["absent", "null", "empty"])
def test_card_without_cvv_is_not_cvv_checked(client, cvv):
    """<Pay securityCode="false"> sends no CVV (README decision)."""
    approved(post(client, card_payload(cvv=cvv)))


def test_amex_test_card_with_four_digit_cvv_is_approved(client):
    approved(post(client, card_payload(cardnumber="378282246310005", cvv="1234")))


FIRST_FAILURE_WINS = [
    pytest.param({"cardnumber": "4111111111111112", "expiry_month": "13",
                  "expiry_year": str(PAST_YEAR), "cvv": "1"}, "incorrect_number",
                 id="luhn-before-everything"),
    pytest.param({"cardnumber": LIVE_VISA, "expiry_month": "00",
                  "expiry_year": str(PAST_YEAR), "cvv": "12345"}, "invalid_expiry_month",
                 id="month-before-expiry-cvv-allow-list"),
    pytest.param({"cardnumber": LIVE_VISA, "expiry_month": "01",
                  "expiry_year": str(PAST_YEAR), "cvv": "1"}, "expired_card",
                 id="expiry-before-cvv-allow-list"),
    pytest.param({"cardnumber": LIVE_VISA, "cvv": "12"}, "invalid_cvc",
                 id="cvv-before-allow-list"),
    pytest.param({"cardnumber": DINERS_TEST_CARD, "expiry_month": "13"},
                 "invalid_expiry_month", id="test-card-skips-only-luhn"),
    pytest.param({"cardnumber": DINERS_TEST_CARD, "expiry_year": str(PAST_YEAR)},
                 "expired_card", id="test-card-still-expires"),
]


@pytest.mark.parametrize("overrides,code", FIRST_FAILURE_WINS)
def test_first_failing_check_wins(client, overrides, code):
    assert answer_of(post(client, card_payload(**overrides))) == declined(code)


def test_tokenize_decline_has_a_null_token_id(client):
    body = card_payload(method="tokenize", amount=..., cardnumber=LIVE_VISA)
    assert answer_of(post(client, body)) == declined("test_mode_live_card", "token_id")
    assert stored(client, body["transaction_id"])["token_id"] is None


@pytest.mark.parametrize("account", ["12345678", "123456789"])
@pytest.mark.parametrize("routing", GOOD_ROUTING)
def test_test_bank_account_is_approved(client, account, routing):
    body = ach_payload(bankaccountnumber=account, routingnumber=routing)
    approved(post(client, body))
    detail = stored(client, body["transaction_id"])
    assert (detail["payment_method"], detail["card_brand"], detail["last4"]) == (
        "ach-debit", None, account[-2:])


@pytest.mark.parametrize("account", ["12345678", "123456789"])
def test_test_bank_account_is_tokenized(client, account):
    body = ach_payload(method="tokenize", amount=..., bankaccountnumber=account)
    approved(post(client, body), "token_id")


@pytest.mark.parametrize("overrides,code", [
    pytest.param({"routingnumber": "121000359"}, "invalid_routing_number", id="bad-checksum"),
    pytest.param({"routingnumber": "12345678"}, "invalid_routing_number", id="8-digits"),
    pytest.param({"routingnumber": "1210003580"}, "invalid_routing_number", id="10-digits"),
    pytest.param({"routingnumber": "12100035x"}, "invalid_routing_number", id="letter"),
    pytest.param({"bankaccountnumber": "87654321"}, "test_mode_live_card", id="other-account"),
    pytest.param({"bankaccountnumber": "4111111111111111"}, "test_mode_live_card",
                 id="card-number-as-account"),
    pytest.param({"bankaccountnumber": "87654321", "routingnumber": "121000359"},
                 "invalid_routing_number", id="routing-before-allow-list"),
])
def test_bank_account_decline(client, overrides, code):
    assert answer_of(post(client, ach_payload(**overrides))) == declined(code)


def test_open_mode_accepts_any_luhn_valid_card_and_any_bank_account(client):
    update_connector(client, "Default", mode="open")
    approved(post(client, card_payload(cardnumber=LIVE_VISA)))
    approved(post(client, card_payload(cardnumber=DINERS_TEST_CARD)))
    approved(post(client, ach_payload(bankaccountnumber="87654321")))
    approved(post(client, ach_payload(method="tokenize", amount=...,
                                      bankaccountnumber="000123456789")), "token_id")
    # The other checks still run.
    assert answer_of(post(client, card_payload(cardnumber="4242424242424241"))) == declined(
        "incorrect_number")
    assert answer_of(post(client, card_payload(cardnumber=LIVE_VISA, cvv="12"))) == declined(
        "invalid_cvc")
    assert answer_of(post(client, ach_payload(bankaccountnumber="87654321",
                                              routingnumber="121000359"))) == declined(
        "invalid_routing_number")


@pytest.mark.parametrize("number,brand,cvv", [
    (LIVE_VISA, "visa", "123"),
    (with_check_digit("510510510510510"), "mastercard", "123"),
    (with_check_digit("222300312200322"), "mastercard", "123"),
    (with_check_digit("37144963539843"), "amex", "1234"),
    (with_check_digit("601100099013942"), "discover", "123"),
    (with_check_digit("353011133330000"), "jcb", "123"),
    (with_check_digit("3622720627166"), "diners-club", "123"),
    (with_check_digit("620000000000004"), "unionpay", "123"),
    (with_check_digit("675964982643845"), "maestro", "123"),
    (with_check_digit("20140000000000"), "enroute", "123"),
], ids=lambda value: value if isinstance(value, str) and not value.isdigit() else None)
def test_brand_of_a_live_card_follows_the_pay_rules(client, number, brand, cvv):
    update_connector(client, "Default", mode="open")
    body = card_payload(cardnumber=number, cvv=cvv)
    approved(post(client, body))
    detail = stored(client, body["transaction_id"])
    assert (detail["card_brand"], detail["last4"]) == (brand, number[-4:])


# -- ids ----------------------------------------------------------------------------------------

def test_ids_are_unique(client):
    ids = {approved(post(client, card_payload())) for _ in range(20)}
    ids |= {approved(post(client, card_payload(method="tokenize", amount=...)), "token_id")
            for _ in range(20)}
    assert len(ids) == 40


@pytest.fixture
def fresh_store(make_app: Callable[..., Any]) -> Callable[..., Any]:
    """Build apps, each on its own fresh copy of the migrated store."""
    return lambda **config: make_app(fresh=True, **config)


SEEDED_TRAFFIC = ["seed-tx-1", "seed-tx-2", "seed-tx-3"]


def _ids_for_traffic(app) -> list[str]:
    client = app.test_client()
    ids = [approved(post(client, card_payload(transaction_id=t))) for t in SEEDED_TRAFFIC]
    ids += [approved(post(client, card_payload(method="tokenize", amount=...,
                                               transaction_id=f"{t}-tok")), "token_id")
            for t in SEEDED_TRAFFIC]
    return ids


def test_seeded_ids_are_reproducible_on_fresh_stores(fresh_store):
    first = _ids_for_traffic(fresh_store(SEED="s1"))
    second = _ids_for_traffic(fresh_store(SEED="s1"))
    assert first == second
    assert len(set(first)) == len(first)
    assert _ids_for_traffic(fresh_store(SEED="s2")) != first
    assert _ids_for_traffic(fresh_store()) != first


def test_unseeded_ids_differ_from_run_to_run(fresh_store):
    assert set(_ids_for_traffic(fresh_store())).isdisjoint(_ids_for_traffic(fresh_store()))


def test_seeded_ids_survive_a_reset(make_app):
    app = make_app(SEED="s1")
    first = _ids_for_traffic(app)
    assert app.test_client().post("/api/reset").status_code == 200
    assert _ids_for_traffic(make_app(SEED="s1")) == first


@pytest.mark.parametrize("seed", ["s1", "42", "0"])
def test_fakeproc_seed_environment_variable_makes_ids_reproducible(fresh_store, monkeypatch,
                                                                   seed):
    """FAKEPROC_SEED as an operator sets it: any text, digits included."""
    monkeypatch.setenv("FAKEPROC_SEED", seed)
    first = _ids_for_traffic(fresh_store())
    assert _ids_for_traffic(fresh_store()) == first


# -- over real HTTP -----------------------------------------------------------------------------

def test_live_server_without_content_type_and_with_basic_auth(server):
    assert requests.patch(f"{server.url}/api/connectors/Default",
                          json={"username": "u", "password": "p"}, timeout=10).ok
    body = card_payload()
    response = requests.post(f"{server.url}/", data=raw(body), auth=("u", "p"), timeout=10)
    assert "Content-Type" not in response.request.headers
    assert response.status_code == 200
    charge_id = response.json()["charge_id"]
    assert ID_PATTERNS["charge_id"].fullmatch(charge_id)
    assert response.json() == {"charge_id": charge_id, "error_code": None,
                               "error_message": None}

    refused = requests.post(f"{server.url}/", data=raw(card_payload()), timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].lower().startswith("basic")
    assert refused.json() == {"charge_id": None, "error_code": "unauthorized",
                              "error_message": UNAUTHORIZED}


def test_live_server_chunked_body_over_64_kib_is_413(server):
    """No Content-Length (chunked transfer): the limit still holds, answered with 413 JSON."""
    encoded = _padded(BODY_LIMIT + 4096)

    def chunks():
        for start in range(0, len(encoded), 4096):
            yield encoded[start:start + 4096]

    response = requests.post(f"{server.url}/", data=chunks(), timeout=10)
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error_code"] == "request_too_large"
    assert response.json()["charge_id"] is None


def test_live_server_small_chunked_body_is_accepted(server):
    encoded = raw(card_payload())
    response = requests.post(f"{server.url}/", timeout=10,
                             data=(encoded[i:i + 16] for i in range(0, len(encoded), 16)))
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 200
    assert response.json()["error_code"] is None


@pytest.mark.parametrize("overrides, message", [
    ({"description": "nul \u0000 inside"},
     "the body holds a NUL character or a \\u escape that is not a Unicode character "
     "(a lone surrogate)"),
    ({"currency_code": "U" * 17}, "currency_code is longer than 16 characters"),
    ({"postal_code": "9" * 33}, "postal_code is longer than 32 characters"),
    ({"parameters": {"fakeproc_scenario": "decline:Not A Code"}},
     "fakeproc_scenario step decline:Not A Code is not understood"),
])
def test_values_no_store_could_keep_are_400(client, overrides, message):
    response = client.post("/", json=card_payload(**overrides))
    assert response.status_code == 400
    assert response.json == {"charge_id": None, "error_code": "invalid_request",
                             "error_message": message}
