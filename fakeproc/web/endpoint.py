"""The Generic Pay Connector endpoint: `POST /` and the deprecated `/charge` and `/tokenize`.

`POST /`, `/charge` and `/tokenize` are answered by `ProcessorRoute` before Flask dispatches
anything: they are most of what a server sees, and Flask's request context, routing and hooks
cost more per request than a charge's own statements. Both ways call `answer`, and every error
gets the processor's JSON shape from `errors.processor_failure` either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Flask, current_app, redirect, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from ..processor import fingerprints, wire
from ..processor.engine import Client
from ..store import attempt_connection
from .errors import processor_error, processor_failure
from .runtime import runtime
from .transport import ARRIVED, to_response

bp = Blueprint("processor", __name__)

# The paths without a connector name, and the method each one implies.
_PLAIN_PATHS = {"/": None, "/charge": "charge", "/tokenize": "tokenize"}


@bp.get("/")
def index() -> Response:
    return redirect(url_for("admin.dashboard"))


@bp.post("/", defaults={"connector": None, "path_method": None})
@bp.post("/charge", defaults={"connector": None, "path_method": "charge"})
@bp.post("/tokenize", defaults={"connector": None, "path_method": "tokenize"})
@bp.post("/connectors/<connector>/", defaults={"path_method": None}, strict_slashes=False)
@bp.post("/connectors/<connector>/charge", defaults={"path_method": "charge"})
@bp.post("/connectors/<connector>/tokenize", defaults={"path_method": "tokenize"})
def receive(connector: str | None, path_method: str | None):
    return answer(request, connector, path_method)


def answer(incoming: Request, connector: str | None, path_method: str | None) -> Response:
    """The processor's answer to one attempt (in the app context)."""
    # The store key, read on a worker's first charge, comes before the unit takes its
    # connection: that read uses a connection of its own, and charges holding theirs while
    # they waited for it could leave none in a bounded pool.
    runtime().fingerprints
    with attempt_connection.unit():
        return _answer(incoming, connector, path_method)


def _answer(incoming: Request, connector: str | None, path_method: str | None) -> Response:
    try:
        auth = incoming.authorization
    except ValueError:  # werkzeug: a Basic token with non-ASCII characters
        auth = None
    username = auth.username if auth and auth.type == "basic" else None
    password = auth.password if auth and auth.type == "basic" else None
    settings = runtime().directory.resolve(connector, username)
    if settings is None:
        return processor_error(404, "connector_not_found", f"no connector named {connector}",
                               path_method)
    if not fingerprints.authenticate(settings, username, password, runtime().fingerprints):
        response = processor_error(401, "unauthorized", "this connector needs Basic auth with "
                                   "its username and password", path_method)
        response.headers["WWW-Authenticate"] = 'Basic realm="fakeproc"'
        return response
    payment = wire.parse(_body(incoming), path_method)
    client = Client(incoming.remote_addr, incoming.headers.get("User-Agent"))
    return to_response(runtime().processor.handle(payment, settings, client,
                                                  incoming.environ.get(ARRIVED)),
                       incoming.environ)


def _body(incoming: Request) -> bytes:
    """The raw body; a chunked one (no Content-Length) is cut at the limit by werkzeug, so
    look for one more byte past it and answer 413 as for a declared length."""
    raw = incoming.get_data(cache=False)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if (limit is not None and len(raw) >= limit and incoming.content_length is None
            and incoming.environ["wsgi.input"].read(1)):
        raise RequestEntityTooLarge()
    return raw


class ProcessorRoute:
    """WSGI middleware: `POST /`, `/charge` and `/tokenize` straight to `answer`, in an app
    context of their own; every other request goes on to Flask."""

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]]):
        self.app, self.wsgi_app = app, wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or path not in _PLAIN_PATHS:
            return self.wsgi_app(environ, start_response)
        path_method = _PLAIN_PATHS[path]
        with self.app.app_context():
            incoming = self.app.request_class(environ)
            try:
                response = answer(incoming, None, path_method)
            except Exception as error:  # noqa: BLE001 - every failure gets the JSON shape
                response = processor_failure(error, incoming.method, path)
            return response(environ, start_response)
