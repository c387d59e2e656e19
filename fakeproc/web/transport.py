"""Deliveries on the wire, including the ones no WSGI response can express: a dropped
connection, a held one, and a response cut short of its Content-Length.

Those take the client socket that gunicorn (`gunicorn.socket`) or Werkzeug's development
server (`werkzeug.socket`) put in the WSGI environ, shut it down, and tell the server that the
connection is dealt with. Flask's test client has no socket: it gets a 502 with an
`X-Fakeproc-Fault` header naming the fault instead.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Response

from ..processor.delivery import Delivery

HANDLED = "fakeproc.connection_handled"
# When the server read the request (an aware UTC datetime), if it stamps arrivals itself.
ARRIVED = "fakeproc.received_at"
_SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")


def to_response(delivery: Delivery, environ: dict[str, Any]) -> Response:
    """The response for a delivery to the request of `environ`; a connection fault acts on
    the socket first."""
    if delivery.kind == "response" and delivery.raw is None:
        response = Response(delivery.body, status=delivery.status,
                            content_type=delivery.content_type)
        if delivery.content_type is None:
            del response.headers["Content-Type"]
        return response
    client = _client_socket(environ)
    if client is None:
        fault = "truncated" if delivery.raw is not None else delivery.kind
        return Response(f"fakeproc: {fault} needs a real connection".encode(), status=502,
                        headers={"X-Fakeproc-Fault": fault}, content_type="text/plain")
    try:
        if delivery.raw is not None:
            client.sendall(delivery.raw)
        client.shutdown(socket.SHUT_RDWR)
    except OSError:  # the client had already gone
        pass
    environ[HANDLED] = True
    return Response(b"", status=200)


def _client_socket(environ: dict[str, Any]) -> socket.socket | None:
    for key in _SOCKET_KEYS:
        client = environ.get(key)
        if client is not None:
            return client
    return None


class ConnectionFaults:
    """WSGI middleware: once a view has dealt with the socket itself, the server must not
    write a response on it."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        result = self.app(environ, start_response)
        if not environ.get(HANDLED):
            return result
        if hasattr(result, "close"):
            result.close()
        if "gunicorn.socket" in environ:
            from gunicorn.workers.base_async import ALREADY_HANDLED

            return ALREADY_HANDLED
        return []
