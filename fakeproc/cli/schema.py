"""`fakeproc db`: the store's schema, brought up to date without serving."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from . import check_environment, database_url_option

_DATABASE = click.option("--database-url", envvar="FAKEPROC_DATABASE_URL",
                         callback=database_url_option,
                         help="SQLAlchemy URL or SQLite file path; default: ./fakeproc.db.")


@click.group()
def db() -> None:
    """The store's schema (`serve` upgrades it by itself at start-up)."""


@db.command()
@_DATABASE
def upgrade(database_url: str | None) -> None:
    """Bring the store's schema to the newest revision, as `serve` does at start-up."""
    from ..store import schema

    with _store(database_url, migrate=True) as (app, shown):
        click.echo(f"schema at revision {schema.schema_revision()}: {shown}")


@db.command()
@_DATABASE
def current(database_url: str | None) -> None:
    """Print the store's schema revision; change nothing."""
    from sqlalchemy.engine import make_url

    from ..config import default_database_url
    from ..store import schema

    url = database_url or default_database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database \
            and not Path(parsed.database).exists():
        click.echo(f"no store yet: {parsed.database} does not exist")
        return
    with _store(database_url, migrate=False) as (app, shown):
        click.echo(f"schema at revision {schema.schema_revision() or 'none'}: {shown}")


@contextlib.contextmanager
def _store(database_url: str | None, migrate: bool) -> Iterator[tuple[Any, str]]:
    """The app on the store asked for, in an app context, and the store as people read it."""
    from .. import create_app
    from ..startup import describe_database
    from ..store.models import db as models
    from ..store.schema import in_reach

    check_environment()
    config: dict[str, Any] = {"AUTO_MIGRATE": migrate}
    if database_url:
        config["DATABASE_URL"] = database_url
    app = create_app(config)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    with app.app_context(), in_reach(url):
        try:
            yield app, describe_database(url)
        finally:
            models.engine.dispose()
