"""`fakeproc serve`: gunicorn with gevent workers, so that hundreds of requests held in delays
and hangs cost a greenlet each while other requests are answered at once."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import struct
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.workers.ggevent import GeventWorker

from .access_log import MaskedLogger
from .web.errors import server_refusal
from .web.transport import ARRIVED


class Server(BaseApplication):
    """A gunicorn application whose workers each build their own fakeproc app."""

    def __init__(self, options: Mapping[str, Any], app_config: Mapping[str, Any]):
        self.options = dict(options)
        self.app_config = dict(app_config)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def run(self) -> None:
        try:
            _Arbiter(self).run()
        except RuntimeError as error:  # gunicorn's own way to say it cannot start
            print(f"Error: {error}", file=sys.stderr)
            sys.exit(1)

    def load(self):
        from . import create_app

        _cooperative_psycopg()

        # The master migrated the schema before forking; workers must not race to do it again.
        return Arrivals(create_app({**self.app_config, "AUTO_MIGRATE": False}))


def _cooperative_psycopg() -> None:
    """Make psycopg wait for PostgreSQL the gevent way in this worker.

    The master imported psycopg (to migrate) before the worker patched the standard library,
    so psycopg chose its C wait, which blocks the whole process: while one request waited on a
    row lock, the worker answered nothing else. Its poll-based wait goes through the patched
    `select` and lets the other requests run."""
    waiting = sys.modules.get("psycopg.waiting")
    if waiting is not None:
        waiting.wait = waiting.wait_poll
        waiting._ready = waiting._ready_poll


class Arrivals:
    """WSGI middleware: stamp each request's arrival, then let the other requests that are
    ready do the same before any of them is processed.

    The stamp is the moment the kernel received the request's first bytes when the socket
    can tell (`StampedSocket`), otherwise the moment the request reached the app. In a burst
    of hundreds, the server reads the last request well after it came; counting its delay
    from the kernel's time keeps the answer due when the client expects it."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        import gevent

        now = datetime.now(timezone.utc)
        client = environ.get("gunicorn.socket")
        kernel = client.take_arrival() if isinstance(client, StampedSocket) else None
        environ[ARRIVED] = min(kernel, now) if kernel else now
        gevent.sleep(0)
        return self.app(environ, start_response)


# Linux: the receive time of a packet, as a timespec in a control message of recvmsg().
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_CONTROL_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)


class StampedSocket:
    """A client socket that remembers when the kernel received the bytes of the next request:
    the receive timestamp of the first read since the last `take_arrival()`.

    Everything but `recv` is the wrapped socket's own."""

    __slots__ = ("_socket", "_arrived")

    def __init__(self, client: socket.socket):
        self._socket = client
        self._arrived: datetime | None = None
        client.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)

    def recv(self, size: int) -> bytes:
        data, control, _flags, _address = self._socket.recvmsg(size, _CONTROL_SPACE)
        if self._arrived is None:
            self._arrived = _receive_time(control)
        return data

    def take_arrival(self) -> datetime | None:
        arrived, self._arrived = self._arrived, None
        return arrived

    def __getattr__(self, name: str) -> Any:
        return getattr(self._socket, name)


def _receive_time(control: list[tuple[int, int, bytes]]) -> datetime | None:
    for level, kind, data in control:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS \
                and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return datetime.fromtimestamp(seconds + nanoseconds / 1e9, timezone.utc)
    return None


# The signals that stop a worker: Ctrl-C, and the master quitting or stopping.
_STOPS = frozenset({signal.SIGINT, signal.SIGQUIT, signal.SIGTERM})


class _Arbiter(Arbiter):
    """gunicorn's master, which holds back the stopping signals while it forks a worker.

    Between its fork and the moment it sets its own handlers, a worker still has the master's:
    a Ctrl-C then went to a copy of the master's signal queue and was lost, and the worker
    lived on until the master killed it 5 s later ("Worker was sent SIGKILL"). Held back, the
    signal waits until the worker's handlers are set (`Worker.init_signals`)."""

    def spawn_worker(self) -> int:
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
        try:
            return super().spawn_worker()  # in the worker, this never returns
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


class Worker(GeventWorker):
    """gunicorn's gevent worker, reading plain-HTTP connections through `StampedSocket`."""

    def init_signals(self) -> None:
        super().init_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)  # held back since the fork

    def init_process(self) -> None:
        gunicorn_util.write_error = _write_refusal  # refusals in fakeproc's shapes
        super().init_process()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Any) -> None:
        _refused_path.set(getattr(req, "path", None) or getattr(getattr(exc, "req", None),
                                                                   "path", None))
        super().handle_error(req, client, addr, exc)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        if not isinstance(client, ssl.SSLSocket):
            try:
                client = StampedSocket(client)
            except OSError:  # no receive timestamps here: stamp on arrival in the app
                pass
        super().handle(listener, client, addr)

    def handle_quit(self, sig: Any, frame: Any) -> None:
        # Ctrl-C, or the master quitting: gunicorn's gevent worker calls sys.exit() from a
        # greenlet, which gevent prints as a traceback once the worker is already exiting.
        # Leave at once instead; the store survives an abrupt end (see tests/test_crash.py).
        self.alive = False
        sys.stderr.flush()
        os._exit(0)


# The path of the request gunicorn is refusing, where it got that far (per greenlet).
_refused_path: ContextVar[str | None] = ContextVar("fakeproc_refused_path", default=None)


_html_refusal = gunicorn_util.write_error


def _write_refusal(client: Any, status: int, reason: str, message: str) -> None:
    """gunicorn's answer to a request it could not parse (a bad request line or header, 414,
    431): JSON in the processor's or the control API's shape instead of an HTML page, except
    on the panel's paths."""
    body = server_refusal(_refused_path.get(), status, message)
    if body is None:
        _html_refusal(client, status, reason, message)
    else:
        head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        gunicorn_util.write_nonblock(client, head.encode("latin-1") + body)
    _linger(client)


def _linger(client: Any, most: int = 1 << 20, seconds: float = 1.0) -> None:
    """Read and drop what the client is still sending before the socket closes: closed with
    unread bytes, it would be reset, and the client could lose the answer just written."""
    try:
        client.shutdown(socket.SHUT_WR)
        client.settimeout(seconds)
        while most > 0 and (data := client.recv(65_536)):
            most -= len(data)
    except OSError:
        pass


def gunicorn_options(host: str, port: int, workers: int, cert: str | None, key: str | None,
                     access_log: bool) -> dict[str, Any]:
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options: dict[str, Any] = {
        "bind": [bind],
        "workers": workers,
        "worker_class": Worker,
        # Each held request (delay, hang, in-flight wait) is one greenlet on one connection.
        "worker_connections": 2000,
        "keepalive": 5,
        "timeout": 60,
        "graceful_timeout": 5,
        "errorlog": "-",
        # fakeproc prints its own banner; gunicorn speaks up only when something is wrong.
        "loglevel": "warning",
        "accesslog": "-" if access_log else None,
        "logger_class": MaskedLogger,
        # X-Forwarded-* is honoured only by fakeproc's own --behind-proxy switch.
        "forwarded_allow_ips": "",
        "proc_name": "fakeproc",
        "post_request": _after_request,
        "post_fork": _balance_connections,
        "reuse_port": True,
        # Several servers may run side by side (tests, one per port): no shared control socket.
        "control_socket_disable": True,
    }
    if cert or key:
        options.update(certfile=cert, keyfile=key)
    return options


def _after_request(worker: Any, request: Any, environ: Any, response: Any) -> None:
    import gevent

    # Reads of this request's body must not pass for the next request's arrival.
    client = environ.get("gunicorn.socket")
    if isinstance(client, StampedSocket):
        client.take_arrival()
    # A gevent socket whose next request is already buffered does not yield, so one busy
    # keep-alive connection could be served again and again while others wait: yield here.
    gevent.sleep(0)


def _balance_connections(server: Any, worker: Any) -> None:
    """Spread connections over the workers.

    Workers sharing one listening socket do not share its connections fairly: the first to
    wake takes a whole burst of keep-alive connections while the others idle. Each worker
    therefore also listens on a socket of its own on the same port (SO_REUSEPORT), among which
    the kernel spreads new connections, and accepts one connection per wake-up."""
    import gevent.baseserver
    from gunicorn import sock

    gevent.baseserver.BaseServer.max_accept = 1
    own = [type(listener)(listener.cfg_addr, worker.cfg, worker.log)
           for listener in worker.sockets if isinstance(listener, sock.TCPSocket)]
    worker.sockets.extend(own)
    # Have the kernel time-stamp received packets from now on (see StampedSocket); a
    # connection's own switch is set only once it is accepted, after its first bytes came.
    for listener in own:
        try:
            listener.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            pass


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))
