"""Twilio's side of the Generic Pay Connector, emulated: the request `<Pay>` sends a processor,
sent with Basic auth, given up on after the connector's timeout and retried with the same
`transaction_id`, and what Twilio would then post to the `<Pay>` action URL.

Standard library HTTP only, so that it runs wherever fakeproc is installed.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..processor import mask
from . import action_fields
from .payment_details import BankAccount, Card, masked, new_transaction_id
from .server_clock import USER_AGENT

TIMEOUT_SECONDS = 10.0  # Twilio gives a processor 10 s to answer
RETRIES = 5  # then retries up to 5 times with the same transaction_id
ANSWERED, TIMEOUT = "answered", "timeout"


@dataclass
class Attempt:
    """One request to the processor. `outcome`: answered, timeout, connection_refused,
    connection_closed, connection_reset, truncated, protocol_error or connection_error."""

    number: int
    started_at: datetime
    elapsed: float
    outcome: str
    status: int | None = None
    body: bytes = b""
    parsed: Any = None
    error: str | None = None

    @property
    def answered(self) -> bool:
        return self.outcome == ANSWERED

    def to_dict(self, hide: tuple[str, ...] = ()) -> dict[str, Any]:
        text = self.body.decode("utf-8", "replace")
        for secret in hide:
            text = text.replace(secret, mask(secret, 4))
        return {"number": self.number, "started_at": self.started_at.isoformat(),
                "elapsed": round(self.elapsed, 6), "outcome": self.outcome,
                "status": self.status, "body": text, "error": self.error}


@dataclass
class Payment:
    """A whole <Pay> payment as Twilio lives it: the attempts, and the action-URL fields.

    `failure` says why `Result` is not success: declined, no_answer, http_status or
    bad_answer (None on success). `request` is the body sent, numbers and CVV masked."""

    transaction_id: str
    method: str
    request: dict[str, Any]
    attempts: list[Attempt]
    fields: dict[str, str]
    failure: str | None
    action_response: tuple[int, bytes] | None = None
    action_error: str | None = None
    _hide: tuple[str, ...] = field(default=(), repr=False)

    @property
    def result(self) -> str:
        return self.fields["Result"]

    def post_to(self, action_url: str, auth_token: str | None = None,
                extra: dict[str, str] | None = None,
                timeout: float = 15.0) -> tuple[int, bytes]:
        """POST the fields form-encoded to a merchant's action URL; (status, body). `extra`
        adds fields (CallSid, …); `auth_token` signs the request as Twilio does."""
        self.action_response = action_fields.post(action_url, {**(extra or {}), **self.fields},
                                               auth_token, timeout)
        return self.action_response

    def to_dict(self) -> dict[str, Any]:
        action = None
        if self.action_response is not None:
            action = {"status": self.action_response[0],
                      "body": self.action_response[1].decode("utf-8", "replace")}
        elif self.action_error is not None:
            action = {"error": self.action_error}
        return {"transaction_id": self.transaction_id, "method": self.method,
                "request": self.request, "result": self.result, "failure": self.failure,
                "attempts": [a.to_dict(self._hide) for a in self.attempts],
                "fields": self.fields, "action_url": action}


class Connector:
    """A Generic Pay Connector pointed at `url`; `timeout` is in configured seconds, and
    `time_scale` multiplies it (0.01 against a fakeproc running at that scale)."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None,
                 timeout: float = TIMEOUT_SECONDS, retries: int = RETRIES,
                 time_scale: float = 1.0, ssl_context: ssl.SSLContext | None = None):
        self.parts = urlsplit(url)
        if self.parts.scheme not in ("http", "https") or not self.parts.hostname:
            raise ValueError(f"{url} is not an http:// or https:// URL")
        if timeout <= 0 or time_scale <= 0 or retries < 0:
            raise ValueError("timeout and time_scale must be positive, retries at least 0")
        self.url, self.timeout, self.retries, self.time_scale = url, timeout, retries, time_scale
        self.ssl_context = ssl_context
        self.headers = {"Content-Type": "application/json", "Accept": "application/json",
                        "User-Agent": USER_AGENT, "Connection": "close"}
        if username is not None or password is not None:
            pair = f"{username or ''}:{password or ''}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()

    def build(self, method: str, payment: Card | BankAccount, amount: Any = None,
              currency: str = "USD", description: Any = None,
              parameters: dict[str, Any] | None = None,
              transaction_id: str | None = None) -> dict[str, Any]:
        """The JSON body Twilio sends for a charge or a tokenize request."""
        if method not in ("charge", "tokenize"):
            raise ValueError(f"method must be charge or tokenize, not {method!r}")
        if not isinstance(payment, (Card, BankAccount)):
            raise TypeError("payment must be a Card or a BankAccount")
        if (method == "charge") != (amount is not None):
            raise ValueError("a charge needs an amount; a tokenize request carries none")
        body: dict[str, Any] = {"method": method,
                                "transaction_id": transaction_id or new_transaction_id()}
        body.update(payment.request_fields())
        if method == "charge":
            body.update(amount=str(amount), currency_code=currency.upper())
        if description is not None:
            body["description"] = description
        if parameters:
            body["parameters"] = {str(k): v for k, v in parameters.items()}
        return body

    def send(self, body: dict[str, Any], number: int = 1) -> Attempt:
        """One attempt, no retry: POST `body` and wait at most the scaled timeout."""
        started_at, start = datetime.now(UTC), time.monotonic()
        deadline = start + self.timeout * self.time_scale
        connection = self._connection(self.timeout * self.time_scale)
        status, raw, error, outcome = None, b"", None, ANSWERED
        try:
            path = (self.parts.path or "/") + (f"?{self.parts.query}" if self.parts.query else "")
            connection.request("POST", path, json.dumps(body).encode(), self.headers)
            sock = connection.sock
            _until(sock, deadline)
            response = connection.getresponse()
            status = response.status
            _until(sock, deadline)
            raw = response.read()
            if time.monotonic() > deadline:  # a body trickled in past the deadline
                outcome = TIMEOUT
        except http.client.IncompleteRead as exc:
            raw, outcome, error = bytes(exc.partial), "truncated", repr(exc)
        except (OSError, http.client.HTTPException) as exc:
            outcome, error = _failure(exc), str(exc) or type(exc).__name__
        finally:
            connection.close()
        parsed = _parse(raw) if outcome == ANSWERED else None
        return Attempt(number, started_at, time.monotonic() - start, outcome, status, raw,
                       parsed, error)

    def pay(self, body: dict[str, Any], action_url: str | None = None, *,
            bank_account_type: str | None = None, auth_token: str | None = None) -> Payment:
        """Everything Twilio does: the first attempt, then the same body again after a timeout
        or a broken connection, at most `retries` times; any HTTP answer ends it."""
        attempts: list[Attempt] = []
        for number in range(1, self.retries + 2):
            attempts.append(self.send(body, number))
            if attempts[-1].answered:
                break
        fields, failure = action_fields.fields(body, attempts, self.timeout, bank_account_type,
                                               self.time_scale)
        hide = tuple(str(body[k]) for k in ("cardnumber", "bankaccountnumber") if body.get(k))
        payment = Payment(str(body.get("transaction_id")), str(body.get("method")),
                          masked(body), attempts, fields, failure, _hide=hide)
        if action_url:
            try:
                payment.post_to(action_url, auth_token)
            except (OSError, http.client.HTTPException) as exc:
                payment.action_error = str(exc) or type(exc).__name__
        return payment

    def charge(self, payment: Card | BankAccount, amount: Any, currency: str = "USD",
               description: Any = None, parameters: dict[str, Any] | None = None,
               transaction_id: str | None = None, action_url: str | None = None) -> Payment:
        body = self.build("charge", payment, amount, currency, description, parameters,
                          transaction_id)
        return self.pay(body, action_url, bank_account_type=_account_type(payment))

    def tokenize(self, payment: Card | BankAccount, description: Any = None,
                 parameters: dict[str, Any] | None = None, transaction_id: str | None = None,
                 action_url: str | None = None) -> Payment:
        body = self.build("tokenize", payment, None, description=description,
                          parameters=parameters, transaction_id=transaction_id)
        return self.pay(body, action_url, bank_account_type=_account_type(payment))

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        host, port = self.parts.hostname, self.parts.port
        if self.parts.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout,
                                               context=self.ssl_context)
        return http.client.HTTPConnection(host, port, timeout=timeout)


def _account_type(payment: Card | BankAccount) -> str | None:
    return payment.account_type if isinstance(payment, BankAccount) else None


def _until(sock: Any, deadline: float) -> None:
    """Whatever is left of the attempt's time becomes the socket's timeout."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    if sock is not None:
        sock.settimeout(left)


def _failure(exc: BaseException) -> str:
    # RemoteDisconnected is a ConnectionResetError too: the server closed without a word.
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection_closed"
    if isinstance(exc, TimeoutError):
        return TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "connection_reset"
    if isinstance(exc, http.client.HTTPException):
        return "protocol_error"
    return "connection_error"


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # UnicodeDecodeError is one too
        return None
