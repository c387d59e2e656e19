"""A counting proxy for PostgreSQL's wire protocol, and the in-flight wait's poll schedule:
what `benchmarks/multi_instance.py` and `tests/test_multi_instance.py` measure a waiting retry
with. Standard library only."""

from __future__ import annotations

import collections
import socket
import struct
import threading

HOST = "127.0.0.1"
POLL_FIRST, POLL_MAX = 0.005, 0.25  # fakeproc/processor.py `_await_settlement`


class QueryCounter:
    """A TCP proxy to PostgreSQL that counts what its clients send: transactions (`BEGIN`),
    statements (each Execute, each other simple query) and round trips (each Sync or simple
    query). Plain connections only: the proxied URL asks for sslmode=disable."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        threading.Thread(target=self._accept, daemon=True).start()

    def counts(self) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter(self._counts)

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection(self.target)
            except OSError:
                return
            threading.Thread(target=self._from_client, args=(client, server), daemon=True).start()
            threading.Thread(target=_pipe, args=(server, client), daemon=True).start()

    def _from_client(self, client: socket.socket, server: socket.socket) -> None:
        buffer, started = b"", False

        def take(size: int) -> bytes:
            nonlocal buffer
            while len(buffer) < size:
                data = client.recv(65536)
                if not data:
                    raise EOFError
                server.sendall(data)
                buffer += data
            taken, buffer = buffer[:size], buffer[size:]
            return taken

        try:
            while not started:  # untyped start-up packets: length, then a protocol code
                length, code = struct.unpack("!ii", take(8))
                take(length - 8)
                started = code == 196608
            while True:
                kind, length = struct.unpack("!ci", take(5))
                self._count(kind, take(length - 4))
        except (EOFError, OSError):
            pass
        finally:
            _close(client, server)

    def _count(self, kind: bytes, payload: bytes) -> None:
        with self._lock:
            if kind == b"Q":
                self._counts["round trips"] += 1
                query = payload.rstrip(b"\0").strip().upper()
                if query == b"BEGIN":
                    self._counts["transactions"] += 1
                elif query not in (b"COMMIT", b"ROLLBACK", b";", b""):
                    self._counts["statements"] += 1
            elif kind == b"S":
                self._counts["round trips"] += 1
            elif kind == b"E":
                self._counts["statements"] += 1


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(source, sink)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


def polls_by_schedule(wait: float) -> int:
    """Reads of a retry waiting `wait` s: at once, after 5, 10, 20 … ms, then every 250 ms."""
    polls, elapsed, pause = 0, 0.0, POLL_FIRST
    while elapsed <= wait:
        polls += 1
        elapsed += pause
        pause = min(pause * 2, POLL_MAX)
    return polls
