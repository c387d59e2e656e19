"""An app served over real HTTP from a thread of this process (the demo, the pytest plugin):
real sockets, so drops, hangs and cut-short answers behave as under `fakeproc serve`."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:  # callers report what matters themselves
        pass


class ThreadedServer:
    """A threaded werkzeug server on `host:port` (0: a free port); each request gets a thread,
    so held requests hold a thread each. Use as a context manager or call start/stop."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self._server = make_server(host, port, app, threaded=True,
                                   request_handler=_QuietHandler)
        # Stopping then waits for requests still being answered (held ones included).
        self._server.daemon_threads = False
        self.host = host
        self.port = self._server.server_port
        bracketed = f"[{host}]" if ":" in host else host
        self.url = f"http://{bracketed}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"fakeproc-server-{self.port}", daemon=True)

    def start(self) -> ThreadedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
