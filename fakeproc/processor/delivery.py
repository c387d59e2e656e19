"""What goes back on the wire for one attempt: a proper answer, or the fault a plan asked for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from .faults import Fault
from .wire import id_key


@dataclass(frozen=True)
class Delivery:
    """`response` (status, body bytes), `hang` (hold, then close) or `drop` (close at once).

    `raw`, when set, is written to the socket as it is and the connection closed: a response
    cut short of its Content-Length. `intact` says whether the answer carried the outcome."""

    kind: str
    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    intact: bool = True
    raw: bytes | None = None
    result_id: str | None = None

    @property
    def record(self) -> str:
        """The attempt's `delivery`: what the client got."""
        return {"hang": "hung", "drop": "dropped"}.get(self.kind, "response")


def answer(status: int, body: dict[str, Any], result_id: str | None) -> Delivery:
    return Delivery("response", status, _json(body), result_id=result_id)


def broken(fault: Fault, method: str, body: dict[str, Any], result_id: str | None) -> Delivery:
    """The fault's delivery; `body` is the proper answer it garbles or withholds."""
    if fault.kind == "hang":
        return Delivery("hang", intact=False, result_id=result_id)
    if fault.kind == "drop":
        return Delivery("drop", intact=False, result_id=result_id)
    if fault.kind == "http_error":
        status = fault.status or 500
        text = fault.body if fault.body is not None else _reason(status)
        return Delivery("response", status, text.encode(), "text/plain; charset=utf-8",
                        intact=False, result_id=result_id)
    return _malformed(fault.variant or "not_json", fault.status or 200, method, body, result_id)


def _malformed(variant: str, status: int, method: str, body: dict[str, Any],
               result_id: str | None) -> Delivery:
    key = id_key(method)
    proper = _json(body)
    if variant == "truncated":
        head = (f"HTTP/1.1 {status} {_phrase(status)}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(proper) + 64}\r\nConnection: close\r\n\r\n").encode()
        return Delivery("response", status, proper[: len(proper) // 2], intact=False,
                        raw=head + proper[: len(proper) // 2], result_id=result_id)
    if variant == "empty":
        return Delivery("response", status, b"", None, intact=False, result_id=result_id)
    if variant == "html":
        page = (f"<!doctype html><html><head><title>{status} {_phrase(status)}</title></head>"
                f"<body><h1>{_phrase(status)}</h1><p>upstream said no</p></body></html>")
        return Delivery("response", status, page.encode(), "text/html; charset=utf-8",
                        intact=False, result_id=result_id)
    if variant == "not_json":
        text = f"{key}={result_id or ''}&error_code={body.get('error_code') or ''}"
        return Delivery("response", status, text.encode(), "text/plain; charset=utf-8",
                        intact=False, result_id=result_id)
    garbled = dict(body)
    if variant == "missing_id":
        garbled.pop(key, None)
    elif variant == "null_id_no_error":
        garbled.update({key: None, "error_code": None, "error_message": None})
    elif variant == "wrong_id_key":
        other = "token_id" if key == "charge_id" else "charge_id"
        garbled = {other if k == key else k: v for k, v in garbled.items()}
    return Delivery("response", status, _json(garbled), intact=False, result_id=result_id)


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _reason(status: int) -> str:
    return f"{status} {_phrase(status)}"
