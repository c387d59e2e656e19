"""Twilio's requests to the team's app: the voice URL, `<Gather>` and `<Pay>` actions,
`<Redirect>`, statusCallbacks. Each is form-encoded (a GET: the query string), carries the
call's standard parameters and is signed with `X-Twilio-Signature` as Twilio signs it. The app
is reached over HTTP, or as a WSGI app called in this process (no socket)."""

from __future__ import annotations

import http.client
import ipaddress
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from ..action_fields import signature
from .twiml import AppError

APP_TIMEOUT = 15.0  # Twilio waits this long (real seconds) for a webhook to answer
USER_AGENT = "TwilioProxy/1.1"


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


@dataclass
class Sent:
    """A request made to the app, as the output shows it."""

    url: str
    method: str
    params: dict[str, str]
    status: int | None = None
    purpose: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "method": self.method, "params": self.params,
                "status": self.status}


class HttpApp:
    """A TwiML app behind a URL."""

    def __init__(self, timeout: float = APP_TIMEOUT):
        self.timeout = timeout

    def __call__(self, method: str, url: str, form: Mapping[str, str],
                 headers: Mapping[str, str]) -> Answer:
        parts = urlsplit(url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" \
            else http.client.HTTPConnection
        connection = kind(parts.hostname, parts.port, timeout=self.timeout)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        body = urlencode(form).encode() if method == "POST" else None
        try:
            connection.request(method, path, body, dict(headers))
            response = connection.getresponse()
            return Answer(response.status, response.getheader("Content-Type") or "",
                          response.read())
        except (OSError, http.client.HTTPException) as error:
            raise AppError(f"{method} {url} failed: {error or type(error).__name__}") from None
        finally:
            connection.close()


class WsgiApp:
    """A TwiML app called in this process, as a WSGI app (a Flask app, say): no socket."""

    def __init__(self, app: Callable[..., Any]):
        from werkzeug.test import Client

        self.client = Client(app)

    def __call__(self, method: str, url: str, form: Mapping[str, str],
                 headers: Mapping[str, str]) -> Answer:
        parts = urlsplit(url)
        base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        response = self.client.open(parts.path or "/", base_url=base, method=method,
                                    query_string=parts.query or None, headers=dict(headers),
                                    data=dict(form) if method == "POST" else None)
        return Answer(response.status_code, response.headers.get("Content-Type", ""),
                      response.get_data())


Transport = Callable[[str, str, Mapping[str, str], Mapping[str, str]], Answer]


class Webhooks:
    """Signs and sends every request to the app, and keeps them for the output."""

    def __init__(self, transport: Transport, auth_token: str, standard: dict[str, str]):
        self.transport, self.auth_token, self.standard = transport, auth_token, standard
        self.sent: list[Sent] = []

    def send(self, method: str, url: str, extra: Mapping[str, str] | None = None,
             purpose: str = "") -> Answer:
        method = method.upper()
        form = {**self.standard, **(extra or {})}
        if method == "GET":
            joiner = "&" if urlsplit(url).query else "?"
            url, form_signed, form = url + joiner + urlencode(form), {}, {}
        else:
            form_signed = form
        headers = {"X-Twilio-Signature": signature(self.auth_token, url, form_signed),
                   "User-Agent": USER_AGENT, "Accept": "*/*"}
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
        record = Sent(url, method, dict(form if method == "POST" else _query(url)),
                      purpose=purpose)
        self.sent.append(record)
        answer = self.transport(method, url, form, headers)
        record.status = answer.status
        return answer


def resolve(base: str, target: str) -> str:
    """A URL in a document, made absolute against the document's own URL."""
    return urljoin(base, target)


def is_private(url: str) -> bool:
    """Whether an http URL points at this machine or a private network (Twilio demands https;
    the emulator lets http through there, and says so)."""
    host = urlsplit(url).hostname or ""
    if host in ("localhost",) or host.endswith(".localhost") or host.endswith(".local"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.ip_address(socket.gethostbyname(host))
        except OSError:
            return False
    return address.is_private or address.is_loopback


def _query(url: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
