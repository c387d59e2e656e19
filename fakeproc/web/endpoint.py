"""The Generic Pay Connector endpoint: `POST /` and the deprecated `/charge` and `/tokenize`."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from ..processor import fingerprints, wire
from ..processor.engine import Client
from ..store import attempt_connection
from .errors import processor_error
from .runtime import runtime
from .transport import ARRIVED, to_response

bp = Blueprint("processor", __name__)


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
    with attempt_connection.unit():
        return _receive(connector, path_method)


def _receive(connector: str | None, path_method: str | None):
    try:
        auth = request.authorization
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
    payment = wire.parse(_body(), path_method)
    client = Client(request.remote_addr, request.headers.get("User-Agent"))
    return to_response(runtime().processor.handle(payment, settings, client,
                                                  request.environ.get(ARRIVED)))


def _body() -> bytes:
    """The raw body; a chunked one (no Content-Length) is cut at the limit by werkzeug, so
    look for one more byte past it and answer 413 as for a declared length."""
    raw = request.get_data(cache=False)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if (limit is not None and len(raw) >= limit and request.content_length is None
            and request.environ["wsgi.input"].read(1)):
        raise RequestEntityTooLarge()
    return raw
