"""Property tests of SPEC §1's promise for the processor endpoint: whatever arrives, the answer is
never a 500 and never anything but a JSON body with `error_code` and the id key.

Bodies are random bytes, mangled real requests, JSON objects built from the known field names with
values of every JSON type, requests carrying lone surrogates or deep nesting, and random header
combinations. Amounts and `fakeproc_scenario` steps that trigger delivery faults (delays, hangs,
dropped connections, HTTP errors, broken bodies: SPEC §3) are kept out: those answers are
deliberately not JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import ach_payload, card_payload

ALLOWED_STATUSES = {200, 400, 401, 404, 413}
PATHS = ["/", "/charge", "/tokenize", "/connectors/Default/", "/connectors/Default/charge",
         "/connectors/Default/tokenize", "/connectors/Nope/"]
ID_KEYS = ("charge_id", "token_id")

FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def assert_json_answer(response, allowed=ALLOWED_STATUSES) -> dict[str, Any]:
    data = response.get_data()
    assert response.status_code in allowed, (response.status_code, data[:500])
    assert response.mimetype == "application/json", (response.headers, data[:500])
    body = json.loads(data)
    assert isinstance(body, dict), data[:500]
    assert "error_code" in body and "error_message" in body, body
    assert sum(key in body for key in ID_KEYS) == 1, body  # the id key is always present
    if response.status_code != 200:
        assert body["error_code"] and all(body.get(key) is None for key in ID_KEYS), body
    # `pytest --hypothesis-show-statistics` shows how the answers were spread.
    event(f"HTTP {response.status_code}" + ("" if response.status_code != 200 else
                                            " approved" if body["error_code"] is None
                                            else " declined"))
    return body


# -- strategies ---------------------------------------------------------------------------------

CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                     "application/x-www-form-urlencoded", "multipart/form-data",
                     "multipart/form-data; boundary=xyz", "application/octet-stream",
                     "text/html; charset=latin-1", "", ";", "application/json; charset=bogus"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)

TEST_CARDS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117",
              "3065930009020004", "3566002020360505", "6200000000000005", "6771798021000008"]

# Strings as JSON allows them, lone surrogates aside (a property of their own below).
TEXT = st.text(max_size=24)
DIGITS = st.text(st.characters(min_codepoint=ord("0"), max_codepoint=ord("9")), max_size=22)

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), TEXT,
                         st.floats(allow_nan=False, allow_infinity=False))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(TEXT, children, max_size=4)),
    max_leaves=12)


def _delivery_fault_amount(value: Any) -> bool:
    """Amounts whose magic values delay, hang, drop or break the answer (SPEC §3)."""
    if not isinstance(value, str):
        return False
    try:
        amount = Decimal(value)
    except (InvalidOperation, ValueError):
        return False
    return amount.is_finite() and Decimal(4000) <= amount < Decimal(4600)


AMOUNTS = st.one_of(
    st.decimals(min_value=0, max_value=1_000_001, places=2).map(str),
    st.sampled_from(["10.0", "10.00", "0", "1000000", "1000000.001", "2001.00", "3000.50",
                     "ten", "-5", "1e3", "10.0001", "", "NaN"]),
    TEXT,
).filter(lambda value: not _delivery_fault_amount(value))

SCENARIOS = st.one_of(
    st.sampled_from(["approve", "decline:do_not_honor", "decline:insufficient_funds",
                     "decline:", "delay:0.5", "delay:-1", "delay:abc", "bogus", "", ";;",
                     "approve;decline:lost_card", "decline:a;delay:1"]),
    TEXT.filter(lambda s: not any(word in s.lower()
                                  for word in ("hang", "drop", "http", "malformed"))),
)
PARAMETERS = st.one_of(
    st.dictionaries(TEXT, st.one_of(TEXT, st.none(), st.integers(), st.booleans()), max_size=4),
    st.fixed_dictionaries({"fakeproc_scenario": SCENARIOS}),
)

PLAUSIBLE = {
    "method": st.sampled_from(["charge", "tokenize", "refund", "CHARGE", ""]),
    "transaction_id": st.one_of(st.sampled_from(["fz-1", "fz-2", "fz-3"]), TEXT),
    "cardnumber": st.one_of(st.sampled_from(TEST_CARDS + ["4242424242424242"]), DIGITS),
    "cvv": st.one_of(st.sampled_from(["123", "1234", "000", "12"]), DIGITS),
    "expiry_month": st.one_of(st.sampled_from(["01", "08", "12", "13", "00", "8"]), DIGITS),
    "expiry_year": st.one_of(st.sampled_from(["27", "2035", "2020", "20", "999"]), DIGITS),
    "amount": AMOUNTS,
    "currency_code": st.one_of(st.sampled_from(["USD", "usd", "EUR"]), TEXT),
    "postal_code": st.one_of(st.sampled_from(["94111", "00000"]), st.none(), TEXT),
    "description": JSON_VALUES,
    "parameters": st.one_of(PARAMETERS, JSON_VALUES),
    "bankaccountnumber": st.one_of(st.sampled_from(["12345678", "123456789", "87654321"]),
                                   DIGITS),
    "routingnumber": st.one_of(st.sampled_from(["121000358", "011000015", "121000359"]),
                               DIGITS),
}


def _field(name: str) -> st.SearchStrategy:
    """Mostly a plausible value, sometimes any JSON value at all (wrong types included)."""
    if name == "amount":
        return st.one_of(AMOUNTS, JSON_VALUES.filter(lambda v: not _delivery_fault_amount(v)))
    return st.one_of(PLAUSIBLE[name], JSON_VALUES)


def _mostly_plausible(name: str) -> st.SearchStrategy:
    plausible = AMOUNTS if name == "amount" else PLAUSIBLE[name]
    return st.one_of(plausible, plausible, plausible, _field(name))


ANY_OBJECT = st.builds(
    lambda known, extra: {**extra, **known},
    st.fixed_dictionaries({}, optional={name: _field(name) for name in PLAUSIBLE}),
    st.dictionaries(TEXT, JSON_VALUES, max_size=3),
)

BASES = [card_payload(), card_payload(method="tokenize", amount=...), ach_payload(),
         ach_payload(method="tokenize", amount=...)]
NEAR_VALID = st.builds(
    lambda base, transaction_id, overrides, dropped: {
        key: value for key, value in {**base, "transaction_id": transaction_id,
                                      **overrides}.items() if key not in dropped},
    st.sampled_from(BASES),
    st.one_of(st.uuids().map(str), PLAUSIBLE["transaction_id"]),
    st.lists(st.sampled_from(sorted(PLAUSIBLE)), unique=True, max_size=3).flatmap(
        lambda names: st.fixed_dictionaries({name: _mostly_plausible(name) for name in names})),
    st.sets(st.sampled_from(sorted(PLAUSIBLE)), max_size=1),
)

# Anything built from the known names, and real requests with a few fields changed or dropped.
REQUEST_OBJECTS = st.one_of(ANY_OBJECT, NEAR_VALID, NEAR_VALID)


def _mangle(encoded: bytes, data: st.DataObject) -> bytes:
    """A real request with a random slice replaced by random bytes."""
    start = data.draw(st.integers(0, len(encoded)))
    end = data.draw(st.integers(start, min(len(encoded), start + 16)))
    return encoded[:start] + data.draw(st.binary(max_size=16)) + encoded[end:]


# What a header value may hold on the wire (latin-1, no control characters).
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                    exclude_characters="\x7f"), max_size=40)
AUTHORIZATIONS = st.one_of(
    st.none(),
    st.binary(max_size=40).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    st.tuples(TEXT, TEXT).map(
        lambda up: "Basic " + base64.b64encode(f"{up[0]}:{up[1]}".encode()).decode()),
    st.sampled_from(["Basic", "Basic ", "Basic =", "Basic !!!", "Bearer", "Bearer x", "Digest a=b",
                     "Basic dTpw dTpw", "Basic dTo=", "Basic OnA=", ":", "Basic Og=="]),
    st.sampled_from(["Basic ", "basic ", "Bearer ", "Digest "]).flatmap(
        lambda scheme: HEADER_TEXT.map(lambda rest: scheme + rest)),
    HEADER_TEXT,
)


def _headers(content_type: str | None, authorization: str | None,
             extra: dict[str, str]) -> dict[str, str]:
    headers = dict(extra)
    if content_type is not None:
        headers["Content-Type"] = content_type
    if authorization is not None:
        headers["Authorization"] = authorization
    return headers


EXTRA_HEADERS = st.dictionaries(
    st.sampled_from(["User-Agent", "X-Forwarded-For", "Accept", "Accept-Charset",
                     "Content-Encoding", "X-Twilio-Signature", "I-Twilio-Idempotency-Token"]),
    HEADER_TEXT, max_size=3)


# -- properties ---------------------------------------------------------------------------------

@FAST
@given(path=st.sampled_from(PATHS), body=st.binary(max_size=512), content_type=CONTENT_TYPES)
def test_random_bytes_get_a_json_answer(client, path, body, content_type):
    headers = {"Content-Type": content_type} if content_type is not None else {}
    assert_json_answer(client.post(path, data=body, headers=headers))


@FAST
@given(path=st.sampled_from(PATHS), data=st.data(),
       original=st.sampled_from([card_payload(transaction_id="fz-m"), ach_payload(),
                                 card_payload(method="tokenize", amount=...)]))
def test_mangled_requests_get_a_json_answer(client, path, data, original):
    body = _mangle(json.dumps(original).encode(), data)
    assert_json_answer(client.post(path, data=body, content_type="application/json"))


@settings(FAST, max_examples=250)
@given(path=st.one_of(st.just("/"), st.sampled_from(PATHS)), body=REQUEST_OBJECTS)
def test_json_objects_of_known_fields_get_a_json_answer(client, path, body):
    assert_json_answer(client.post(path, data=json.dumps(body), content_type="application/json"))


@settings(FAST, max_examples=150)
@given(path=st.sampled_from(PATHS), base=st.sampled_from(["card", "ach"]), data=st.data())
def test_lone_surrogates_get_a_json_answer(client, path, base, data):
    """`"\\udc80"` is a legal JSON escape that is not a Unicode character."""
    body = card_payload() if base == "card" else ach_payload()
    field = data.draw(st.sampled_from(sorted(set(body) | {"postal_code", "x_extra"})))
    surrogate = data.draw(st.characters(categories=["Cs"]))
    value = body.get(field)
    body[field] = (value if isinstance(value, str) else "") + surrogate
    assert_json_answer(client.post(path, data=json.dumps(body), content_type="application/json"))


@settings(FAST, max_examples=60)
@given(depth=st.integers(1, 1500), field=st.sampled_from(["description", "x_extra", "amount"]),
       container=st.sampled_from([("[", "]"), ('{"a":', "}")]))
def test_deep_nesting_gets_a_json_answer(client, depth, field, container):
    opening, closing = container
    nested = (opening * depth + "null" + closing * depth).encode()
    body = json.dumps(card_payload()).encode()[:-1] + f', "{field}": '.encode() + nested + b"}"
    assert_json_answer(client.post("/", data=body, content_type="application/json"))


@FAST
@given(path=st.sampled_from(PATHS), content_type=CONTENT_TYPES, authorization=AUTHORIZATIONS,
       extra=EXTRA_HEADERS, tokenize=st.booleans())
def test_random_headers_on_an_open_connector(client, path, content_type, authorization, extra,
                                             tokenize):
    body = card_payload(method="tokenize", amount=...) if tokenize else card_payload()
    headers = _headers(content_type, authorization, extra)
    answer = assert_json_answer(client.post(path, data=json.dumps(body), headers=headers))
    path_method = path.rstrip("/").rsplit("/", 1)[-1]
    contradicts = path_method in ("charge", "tokenize") and path_method != body["method"]
    if "Nope" not in path and not contradicts:
        assert answer["error_code"] is None, (headers, answer)


@pytest.fixture
def locked_client(client):
    response = client.patch("/api/connectors/Default", json={"username": "u", "password": "p"})
    assert response.status_code == 200
    return client


# Default's credentials, u:p; the auth scheme is case-insensitive (RFC 7235).
RIGHT = st.sampled_from(["Basic dTpw", "basic dTpw", "BASIC dTpw"])


def _is_right(header: str | None) -> bool:
    """Whether `header` carries u:p (base64 decoded as leniently as werkzeug does)."""
    if header is None:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        return base64.b64decode(token.strip()) == b"u:p"
    except (binascii.Error, ValueError):
        return False


@FAST
@given(path=st.sampled_from([p for p in PATHS if "Nope" not in p]), content_type=CONTENT_TYPES,
       authorization=st.one_of(AUTHORIZATIONS, RIGHT), extra=EXTRA_HEADERS,
       body=st.one_of(st.builds(card_payload), st.binary(max_size=64)))
def test_random_headers_on_a_password_protected_connector(locked_client, path, content_type,
                                                          authorization, extra, body):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = _headers(content_type, authorization, extra)
    response = locked_client.post(path, data=data, headers=headers)
    if _is_right(authorization):
        assert_json_answer(response, allowed={200, 400})
    else:
        assert_json_answer(response, allowed={401})
        assert response.headers["WWW-Authenticate"].lower().startswith("basic")
