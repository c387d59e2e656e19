"""`fakeproc serve`: gunicorn with gevent workers, so that hundreds of requests held in delays
and hangs cost a greenlet each while other requests are answered at once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from gunicorn.app.base import BaseApplication

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

    def load(self):
        from . import create_app

        # The master migrated the schema before forking; workers must not race to do it again.
        return Arrivals(create_app({**self.app_config, "AUTO_MIGRATE": False}))


class Arrivals:
    """WSGI middleware: stamp each request's arrival, then let the other requests that are
    ready do the same before any of them is processed.

    Under gevent a request runs until it waits for something, so in a burst of hundreds the
    last would otherwise be stamped only after all the others' processing: its delay would
    start late and its `received_at` would not say when it came."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        import gevent

        environ[ARRIVED] = datetime.now(timezone.utc)
        gevent.sleep(0)
        return self.app(environ, start_response)


def gunicorn_options(host: str, port: int, workers: int, cert: str | None, key: str | None,
                     access_log: bool) -> dict[str, Any]:
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options: dict[str, Any] = {
        "bind": [bind],
        "workers": workers,
        "worker_class": "gevent",
        # Each held request (delay, hang, in-flight wait) is one greenlet on one connection.
        "worker_connections": 2000,
        "keepalive": 5,
        "timeout": 60,
        "graceful_timeout": 5,
        "errorlog": "-",
        "loglevel": "info",
        "accesslog": "-" if access_log else None,
        # X-Forwarded-* is honoured only by fakeproc's own --behind-proxy switch.
        "forwarded_allow_ips": "",
        "proc_name": "fakeproc",
        "post_request": _yield_after_request,
        "post_fork": _balance_connections,
        "reuse_port": True,
        # Several servers may run side by side (tests, one per port): no shared control socket.
        "control_socket_disable": True,
    }
    if cert or key:
        options.update(certfile=cert, keyfile=key)
    return options


def _yield_after_request(worker: Any, request: Any, environ: Any, response: Any) -> None:
    # A gevent socket whose next request is already buffered does not yield, so one busy
    # keep-alive connection could be served again and again while others wait: yield here.
    import gevent

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


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))
