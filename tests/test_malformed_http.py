"""Requests broken below HTTP's surface, sent over a raw socket to `fakeproc serve`: a chunked
body the server cannot parse, a bad header, a request line or headers too long. Each gets one
answer in the shape of the surface it was sent to (SPEC §1), never a 500 or a traceback, and
the connection ends after it so nothing that follows is read as another request."""

from __future__ import annotations

import json
import socket

import pytest

from conftest import ServeGroup, card_payload

BROKEN_BODIES = {
    "bad chunk size": b"zz\r\n{}\r\n0\r\n\r\n",
    "chunk without its terminator": b"2\r\n{}XX0\r\n\r\n",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    group = ServeGroup(tmp_path_factory.mktemp("malformed"))
    (process,) = group(f"sqlite:///{group.log_dir / 'malformed.db'}")
    yield process
    group.stop()


def exchange(server, raw: bytes) -> bytes:
    """Send `raw` and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(raw)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    return received


def split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def chunked(path: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode() + body


@pytest.mark.slow
@pytest.mark.parametrize("broken", BROKEN_BODIES.values(), ids=BROKEN_BODIES.keys())
@pytest.mark.parametrize("path", ["/", "/charge", "/api/rules", "/admin/login"])
def test_a_chunked_body_the_server_cannot_parse_is_one_400_in_the_surface_s_shape(
        server, path, broken):
    answer = exchange(server, chunked(path, broken))
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    status, headers, body = split(answer)
    assert status == 400 and headers["connection"] == "close", answer
    if path.startswith("/admin"):
        assert headers["content-type"].startswith("text/html")
        assert b"could not be read" in body or b"refused" in body
    elif path.startswith("/api/"):
        assert json.loads(body)["error"].startswith("the request body could not be read")
    else:
        parsed = json.loads(body)
        assert parsed["charge_id"] is None and parsed["error_code"] == "invalid_request"
        assert parsed["error_message"].startswith("the request body could not be read")
    assert "Traceback" not in server.log()


@pytest.mark.slow
def test_a_panel_form_whose_body_cannot_be_read_is_a_400_page(server):
    answer = exchange(server, chunked("/admin/login", b"zz\r\npassword=x\r\n0\r\n\r\n",
                                      "application/x-www-form-urlencoded"))
    status, headers, body = split(answer)
    assert (status, answer.count(b"HTTP/1.1 ")) == (400, 1)
    assert b"<html" in body and "Traceback" not in server.log()


@pytest.mark.slow
def test_a_good_chunked_charge_keeps_the_connection_for_the_next_request(server):
    body = json.dumps(card_payload()).encode()
    raw = chunked("/", f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    raw += b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    answer = exchange(server, raw)
    assert answer.count(b"HTTP/1.1 200") == 2, answer
    assert b'"charge_id":"ch_' in answer.replace(b" ", b"")


REFUSED = {
    "bad Content-Length on /": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                                400),
    "bad Content-Length on the API": (b"POST /api/rules HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: abc\r\n\r\n", 400),
    "NUL in a header": (b"POST /api/rules HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    "request line too long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "headers too large": (b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000
                          + b"\r\n\r\n", 431),
    "not HTTP at all": (b"GARBAGE\r\n\r\n", 400),
}


@pytest.mark.slow
@pytest.mark.parametrize("raw,status", REFUSED.values(), ids=REFUSED.keys())
def test_what_the_server_refuses_before_fakeproc_is_json(server, raw, status):
    try:
        answer = exchange(server, raw)
    except ConnectionResetError:  # the server closed with part of a long line unread
        pytest.fail("the connection was reset before an answer arrived")
    got, headers, body = split(answer)
    assert got == status and headers["content-type"] == "application/json", answer
    parsed = json.loads(body)
    if raw.startswith(b"POST /api/") and b"Content-Length" in raw:  # the path was read
        assert list(parsed) == ["error"], parsed
    elif raw.startswith(b"POST / "):
        assert parsed["charge_id"] is None and parsed["error_code"], parsed
    message = parsed.get("error_message") or parsed.get("error")
    assert message and "<" not in message, parsed
