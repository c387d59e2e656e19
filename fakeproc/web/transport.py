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

from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.wrappers import Response

from ..processor.delivery import Delivery

HANDLED = "fakeproc.connection_handled"
# Set when the request's body could not be read (a broken chunked encoding): the rest of the
# connection cannot be trusted, so its answer is the last one on it.
UNREADABLE = "fakeproc.body_unreadable"
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
    write a response on it; a body the server could not read is a 400 in the shape of its
    surface, sent as the connection's last answer."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        body = environ["wsgi.input"] = _ReadErrors(environ["wsgi.input"], environ)
        client = _client_socket(environ)
        started: list[Any] = []

        def starting(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            started[:] = [status, headers]  # for _last_answer, if it comes to that
            return start_response(status, headers, *exc_info)

        result = self.app(environ, starting)
        if client is not None and not environ.get(HANDLED):
            if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
                body.finish()  # what the view left unread, before the server reads it
            if environ.get(UNREADABLE):
                _last_answer(environ, started, result)
        if not environ.get(HANDLED):
            return result
        if hasattr(result, "close"):
            result.close()
        if "gunicorn.socket" in environ:
            from gunicorn.workers.base_async import ALREADY_HANDLED

            return ALREADY_HANDLED
        return []


class _ReadErrors:
    """The request body as the server gives it, except that a body the server cannot parse
    (a bad chunk size, a chunk without its terminator) is a 400 rather than a crash."""

    def __init__(self, stream: Any, environ: dict[str, Any]):
        self._stream, self._environ = stream, environ

    def read(self, *args: Any) -> bytes:
        return self._call(self._stream.read, *args)

    def readline(self, *args: Any) -> bytes:
        return self._call(self._stream.readline, *args)

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def finish(self, limit: int = 65_536) -> None:
        """Read on to the end of a body the view left unread (up to `limit` bytes), so that
        one the server cannot parse is found before the answer goes out, not after it."""
        try:
            while limit > 0 and (data := self.read(min(limit, 8192))):
                limit -= len(data)
        except HTTPException:
            pass  # UNREADABLE is set

    def _call(self, method: Callable[..., bytes], *args: Any) -> bytes:
        try:
            return method(*args)
        except HTTPException:
            raise
        except Exception as error:  # noqa: BLE001 - whatever the server's parser raised
            self._environ[UNREADABLE] = True
            raise BadRequest(f"the request body could not be read: {error}") from error


def _last_answer(environ: dict[str, Any], started: list[Any], result: Iterable[bytes]) -> None:
    """Write the answer with `Connection: close` and shut the socket: the server must not
    read what follows a broken body as the next request."""
    status, headers = started
    body = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    kept = [(name, value) for name, value in headers
            if name.lower() not in ("content-length", "connection")]
    head = "".join(f"{name}: {value}\r\n" for name, value in kept)
    raw = (f"HTTP/1.1 {status}\r\n{head}Content-Length: {len(body)}\r\n"
           "Connection: close\r\n\r\n").encode("latin-1") + body
    client = _client_socket(environ)
    try:
        client.sendall(raw)
        client.shutdown(socket.SHUT_RDWR)
    except OSError:  # the client had already gone
        pass
    environ[HANDLED] = True
