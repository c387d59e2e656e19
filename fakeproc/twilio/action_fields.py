"""What Twilio posts to the `<Pay>` action URL once the processor has answered, or has not:
the fields, judged from the request and the attempts, and the form POST that delivers them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from ..processor import card_brand, mask
from .server_clock import real_seconds

SUCCESS = "success"
DUPLICATE = "duplicate_transaction"
CONNECTOR_ERROR = "payment-connector-error"
# PayErrorCode, from Twilio's error dictionary. The <Pay> page names the field, not the values.
DECLINED_CHARGE = "64008"  # Pay: Payment Gateway rejected charge creation
DECLINED_TOKEN = "64010"  # Pay: Payment Gateway rejected token creation
NO_ANSWER = "11205"  # HTTP connection failure (no answer in time, connection broken)
BROKEN_ANSWER = "11206"  # HTTP protocol violation (cut short, or not a processor answer)
HTTP_STATUS = "11217"  # HTTP error response code
# Payment.failure: why Result is not success.
DECLINED, NO_ANSWER_FAILURE, HTTP_FAILURE, BAD_ANSWER = (
    "declined", "no_answer", "http_status", "bad_answer")


class AttemptLike(Protocol):
    outcome: str
    status: int | None
    parsed: Any


def id_key(method: str | None) -> str:
    return "token_id" if method == "tokenize" else "charge_id"


def fields(body: Mapping[str, Any], attempts: Sequence[AttemptLike], timeout: float,
           bank_account_type: str | None = None,
           time_scale: float = 1.0) -> tuple[dict[str, str], str | None]:
    """The action-URL fields for `body` sent as `attempts`, and the failure kind (None when
    Result is success). `timeout` is the connector's, in configured seconds; a message that
    names it gives the real seconds under `time_scale`."""
    failure, outcome = _judge(body.get("method"), attempts, real_seconds(timeout, time_scale))
    result = {"Result": SUCCESS if failure is None else CONNECTOR_ERROR, **outcome}
    result.update(_instrument(body, bank_account_type))
    answer = attempts[-1].parsed if attempts and attempts[-1].outcome == "answered" else None
    if isinstance(answer, dict) and isinstance(answer.get("parameters"), dict):
        # Custom parameters the processor returned reach the app with a PayConnector_ prefix.
        for key, value in answer["parameters"].items():
            result[f"PayConnector_{key}"] = _text(value)
    return result, failure


def _judge(method: str | None, attempts: Sequence[AttemptLike],
           timeout: str) -> tuple[str | None, dict[str, str]]:
    last = attempts[-1]
    if last.outcome != "answered":
        if last.outcome == "timeout":
            why = f"the payment processor did not answer within {timeout}"
        elif last.outcome == "truncated":
            why = "the payment processor's answer was cut short"
        else:
            why = f"the connection to the payment processor failed ({last.outcome})"
        code = BROKEN_ANSWER if last.outcome == "truncated" else NO_ANSWER
        return NO_ANSWER_FAILURE, _error(code, f"{why}; {len(attempts)} attempts")
    answer, key = last.parsed, id_key(method)
    code = _error_code(answer)
    if last.status is None or not 200 <= last.status < 300:
        connector = {"ConnectorError": code} if code else {}
        return HTTP_FAILURE, {**connector, **_error(
            HTTP_STATUS, f"the payment processor answered HTTP {last.status}")}
    if code == DUPLICATE and len(attempts) > 1 and _usable_id(answer, key):
        # A retry refused as a duplicate, with the original id: the charge (or token) was
        # made; the Generic Pay Connector page lets a processor answer a retry either way.
        return None, {_confirmation(key): str(answer[key]), "ConnectorError": code}
    if code:
        return DECLINED, {"ConnectorError": code,
                          **_error(DECLINED_TOKEN if key == "token_id" else DECLINED_CHARGE,
                                   _text(answer.get("error_message")) or code)}
    if not isinstance(answer, dict):
        reason = "not JSON" if answer is None else "not a JSON object"
    elif key not in answer:
        reason = f"{key} is missing"
    elif not _usable_id(answer, key):
        reason = f"{key} is {json.dumps(answer[key])} and error_code is not set"
    else:
        return None, {_confirmation(key): str(answer[key])}
    return BAD_ANSWER, _error(BROKEN_ANSWER, f"the payment processor's answer is unusable: "
                                             f"{reason}")


def _usable_id(answer: Any, key: str) -> bool:
    value = answer.get(key) if isinstance(answer, dict) else None
    return not isinstance(value, bool) and isinstance(value, (str, int)) and value != ""


def _confirmation(key: str) -> str:
    return "PaymentToken" if key == "token_id" else "PaymentConfirmationCode"


def _error_code(answer: Any) -> str | None:
    """The processor's error_code, when it sent one (null and "" are none)."""
    if isinstance(answer, dict) and answer.get("error_code") not in (None, ""):
        return _text(answer["error_code"])
    return None


def _error(code: str, message: str) -> dict[str, str]:
    return {"PayErrorCode": code, "PaymentError": message}


def _instrument(body: Mapping[str, Any], bank_account_type: str | None) -> dict[str, str]:
    """The captured payment details as <Pay> reports them: masked, except what is not PCI data."""
    if body.get("cardnumber") is not None:
        number = str(body["cardnumber"])
        result = {"PaymentMethod": "credit-card", "PaymentCardNumber": mask_card(number)}
        if brand := card_brand(number):
            result["PaymentCardType"] = brand
        month, year = body.get("expiry_month"), body.get("expiry_year")
        if month and year:
            result["ExpirationDate"] = f"{month!s:0>2}{str(year)[-2:]}"
        if body.get("cvv"):
            result["SecurityCode"] = "*" * len(str(body["cvv"]))
        if body.get("postal_code"):
            result["PaymentCardPostalCode"] = str(body["postal_code"])
        return result
    if body.get("bankaccountnumber") is not None:
        return {"PaymentMethod": "ach-debit",
                "BankAccountNumber": mask(str(body["bankaccountnumber"]), 2),
                "BankRoutingNumber": str(body.get("routingnumber") or ""),
                "BankAccountType": bank_account_type or "consumer-checking"}
    return {}


def mask_card(number: str) -> str:
    """Only the last four digits shown, in the card's groups: xxxx-xxxxxx-x0005 for a 15-digit
    Amex (as the <Pay> page shows it), xxxx-xxxx-xxxx-1111 for 16 digits."""
    hidden = "x" * max(len(number) - 4, 0) + number[-4:]
    sizes = {15: (4, 6, 5), 14: (4, 6, 4)}.get(len(hidden))
    if len(hidden) <= 4:
        return hidden
    if sizes is None:  # fours from the left; a lone last digit joins the group before it
        fours, rest = divmod(len(hidden), 4)
        sizes = (4,) * (fours - 1) + ((5,) if rest == 1 else (4,) + ((rest,) if rest else ()))
    groups, start = [], 0
    for size in sizes:
        groups.append(hidden[start:start + size])
        start += size
    return "-".join(groups)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def signature(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """X-Twilio-Signature: HMAC-SHA1 of the URL followed by every field name and value, sorted
    by name, under the account's auth token, in base64."""
    message = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(auth_token.encode(), message.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def post(url: str, form: Mapping[str, str], auth_token: str | None = None,
         timeout: float = 15.0) -> tuple[int, bytes]:
    """POST `form` form-encoded to `url`, as Twilio calls an action URL; (status, body).
    Connection errors are raised (OSError, http.client.HTTPException)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url} is not an http:// or https:// URL")
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
               "User-Agent": "TwilioProxy/1.1", "Accept": "*/*"}
    if auth_token:
        headers["X-Twilio-Signature"] = signature(auth_token, url, form)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname, parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, urlencode(form).encode(), headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
