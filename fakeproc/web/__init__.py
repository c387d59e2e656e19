"""HTTP glue: thin blueprints over the domain (processor endpoint, control API, admin panel)."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from . import admin, api, errors, processor

    app.register_blueprint(processor.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    errors.register(app)
