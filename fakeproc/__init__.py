"""fakeproc: a stateful fake payment processor for Twilio's Generic Pay Connector."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["create_app", "prepare_store"]

# Settings that are text whatever they look like: Flask's from_prefixed_env JSON-decodes every
# value, so FAKEPROC_SEED=42 would arrive as the int 42 and FAKEPROC_PASSWORD=true as True.
_TEXT_SETTINGS = ("DATABASE_URL", "SEED", "USERNAME", "PASSWORD", "ADMIN_TOKEN", "ADMIN_PASSWORD",
                  "SECRET_KEY")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then `FAKEPROC_*` environment variables, then `config`."""
    # Imported here, not at the top: the command line and the pytest plugin import this
    # package, and most of their commands never build an app.
    from flask import Flask
    from flask_migrate import Migrate
    from werkzeug.middleware.proxy_fix import ProxyFix

    from . import settings
    from .config import RESOURCE_ROOT, Defaults

    app = Flask(__name__, template_folder=str(RESOURCE_ROOT / "templates"),
                static_folder=str(RESOURCE_ROOT / "static"))
    app.config.from_object(Defaults)
    app.config.from_prefixed_env("FAKEPROC")
    for name in _TEXT_SETTINGS:
        if f"FAKEPROC_{name}" in os.environ:
            app.config[name] = os.environ[f"FAKEPROC_{name}"]
    if config:
        app.config.update(config)
    settings.check(app.config, {key: key for key in config or {}})
    _configure_database(app)

    from .processor.runtime import Runtime
    from .store import schema
    from .store.models import db
    from .web import register
    from .web.endpoint import ProcessorRoute
    from .web.transport import ConnectionFaults

    app.extensions["fakeproc"] = Runtime(app.config)
    Migrate(app, db, directory=str(schema.MIGRATIONS))
    register(app)
    app.wsgi_app = ConnectionFaults(ProcessorRoute(app, app.wsgi_app))  # type: ignore[method-assign]
    if app.config["PROXY_FIX"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1,
                                x_prefix=1)  # type: ignore[method-assign]
    if app.config["AUTO_MIGRATE"]:
        prepare_store(app)
    return app


def prepare_store(app: Flask) -> None:
    """Bring the app's store up to date, as `create_app` does unless AUTO_MIGRATE is off: the
    schema migrated, the Default connector there with the start-up credentials, and what a
    stopped process left open swept up."""
    from .control import connectors
    from .store import schema

    def first_start() -> None:  # in the app context, once the schema is there
        connectors.ensure_default(app.config.get("USERNAME"), app.config.get("PASSWORD"),
                                  app.extensions["fakeproc"].fingerprints)

    schema.prepare(app, first_start)


def _configure_database(app: Flask) -> None:
    from .config import default_database_url
    from .store.models import db
    from .store.schema import engine_options

    url = app.config.get("DATABASE_URL") or default_database_url()
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(url))
    db.init_app(app)
