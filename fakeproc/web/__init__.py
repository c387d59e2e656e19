"""The web: thin blueprints over the layers below. The Generic Pay Connector endpoint
(`endpoint`), the JSON control API (`api`) and its OpenAPI document (`openapi/`), the admin
panel (`admin/`), one error shape per surface (`errors`), faults acted out on the socket
(`transport`), and the app's services for the views (`runtime`). A view parses, calls the
processor or the control layer, and renders; none writes SQL. Modules here import the control
layer, the processor and the store, never Twilio's side, the test kit or the command line.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from werkzeug.routing import PathConverter


def register(app: Flask) -> None:
    from . import admin, api, endpoint, errors

    app.url_map.converters["text"] = AnyText
    app.before_request(_store_failure)  # before CSRF's check, which needs the session key
    app.register_blueprint(endpoint.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    errors.register(app)
    app.session_interface = PanelSessions()
    csrf = CSRFProtect(app)
    # Twilio and API clients authenticate every call; only the panel's forms use cookies.
    csrf.exempt(endpoint.bp)
    csrf.exempt(api.bp)


class AnyText(PathConverter):
    """A URL part that is any text a client may have sent as an id, slashes and line breaks
    included: werkzeug's `path` stops at a line break, and an id that held one could not be
    looked up."""

    regex = r"[^/][\s\S]*?"


class PanelSessions(SecureCookieSessionInterface):
    """Signed-cookie sessions whose key, unless configured, is the store's own: loaded when the
    panel is first used, so every process on one database accepts the same logins."""

    def open_session(self, app: Flask, request: Any) -> Any:
        if app.secret_key is None and request.path.startswith("/admin"):
            from sqlalchemy.exc import SQLAlchemyError

            from ..store.secrets import session_key

            try:
                app.config["SECRET_KEY"] = session_key()
            except SQLAlchemyError as error:  # the store is out of reach: see _store_failure
                request.environ[_STORE_FAILURE] = error
                return self.make_null_session(app)
        return super().open_session(app, request)


_STORE_FAILURE = "fakeproc.store_failure"


def _store_failure() -> None:
    """A store that failed while the session opened fails the request where its error
    handlers see it (a 503 when it is out of reach), not in the CSRF check that follows."""
    from flask import request

    error = request.environ.pop(_STORE_FAILURE, None)
    if error is not None:
        raise error
