"""The `fakeproc` command: `serve` for the production server, plus Flask's own commands
(`fakeproc db upgrade`, `fakeproc routes`, …) on the same app."""

from __future__ import annotations

import logging
import secrets
import sys

import click
from click.core import ParameterSource
from flask.cli import FlaskGroup

from .config import LOOPBACK_HOSTS


def _create_app():
    from . import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, load_dotenv=False,
             add_default_commands=True, set_debug_flag=False)
def main() -> None:
    """fakeproc: a fake payment processor for Twilio's Generic Pay Connector."""


@main.command(with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True, envvar="FAKEPROC_HOST",
              help="Address to listen on; anything but loopback needs an admin token.")
@click.option("--port", default=8000, show_default=True, envvar="FAKEPROC_PORT", type=int)
@click.option("--database-url", envvar="FAKEPROC_DATABASE_URL",
              help="SQLAlchemy URL; default: SQLite file ./fakeproc.db. "
                   "PostgreSQL: postgresql+psycopg://user@host/db")
@click.option("--workers", type=int, default=None, envvar="FAKEPROC_WORKERS",
              help="Worker processes (default: one per core, at most 4).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), envvar="FAKEPROC_CERT",
              help="TLS certificate (PEM); serve HTTPS.")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), envvar="FAKEPROC_KEY",
              help="TLS private key (PEM).")
@click.option("--behind-proxy", is_flag=True, envvar="FAKEPROC_PROXY_FIX",
              help="Honour X-Forwarded-For/-Proto/-Host from one proxy or tunnel in front.")
@click.option("--time-scale", type=float, envvar="FAKEPROC_TIME_SCALE", default=None,
              help="Multiply every delay, hang and the connector timeout (tests: 0.01).")
@click.option("--access-log", is_flag=True, help="Log every request line to stderr.")
def serve(host: str, port: int, database_url: str | None, workers: int | None,
          cert: str | None, key: str | None, behind_proxy: bool, time_scale: float | None,
          access_log: bool) -> None:
    """Run the production server (gunicorn, gevent workers)."""
    from . import create_app
    from .models import db
    from .server import Server, default_workers, gunicorn_options

    if bool(cert) != bool(key):
        raise click.UsageError("--cert and --key go together")
    app_config: dict = {"PROXY_FIX": behind_proxy}
    if cert:  # the admin session cookie then travels over HTTPS only
        app_config["SESSION_COOKIE_SECURE"] = True
    if database_url:
        app_config["DATABASE_URL"] = database_url
    if time_scale is not None:
        app_config["TIME_SCALE"] = time_scale
    _configure_logging()
    app = create_app(app_config)  # migrates the schema once, before any worker starts
    app_config["DATABASE_URL"] = app.config["SQLALCHEMY_DATABASE_URI"]
    if (host not in LOOPBACK_HOSTS and not app.config.get("ADMIN_TOKEN")
            and not app.config.get("ADMIN_PASSWORD")):
        app_config["ADMIN_TOKEN"] = secrets.token_urlsafe(24)
        click.echo(f"fakeproc: listening beyond loopback with no admin credentials set; "
                   f"admin token for this run: {app_config['ADMIN_TOKEN']}", err=True)
    with app.app_context():
        db.engine.dispose()
    options = gunicorn_options(host, port, workers or default_workers(), cert, key, access_log)
    Server(options, app_config).run()


@main.command(with_appcontext=False)
@click.option("--count", default=120, show_default=True, type=click.IntRange(1, 100_000),
              help="How many transactions to send.")
@click.option("--seed", type=int, default=None,
              help="Same seed, same customers, orders, amounts and mix of stories.")
@click.option("--database-url", envvar="FAKEPROC_DATABASE_URL",
              help="Store of the embedded server; default: as for serve (./fakeproc.db).")
@click.option("--url", help="Send to a running fakeproc (e.g. http://127.0.0.1:8000) instead "
                            "of starting one here.")
@click.option("--username", envvar="FAKEPROC_USERNAME",
              help="Basic-auth username of the connector to send to.")
@click.option("--password", envvar="FAKEPROC_PASSWORD", help="Its password.")
@click.option("--admin-token", envvar="FAKEPROC_ADMIN_TOKEN",
              help="Bearer token of the control API, when the server needs one.")
@click.option("--time-scale", type=float, default=None,
              help="The embedded server's time scale (default 0.01); with --url, the scale that "
                   "server runs with (default 1: delays and hangs are left out).")
def demo(count: int, seed: int | None, database_url: str | None, url: str | None,
         username: str | None, password: str | None, admin_token: str | None,
         time_scale: float | None) -> None:
    """Fill the store with realistic traffic, sent through the processor endpoint."""
    from .demo import DemoError, run

    given = click.get_current_context().get_parameter_source("database_url")
    if url and given == ParameterSource.COMMANDLINE:
        raise click.UsageError("--database-url is for the embedded server; the server at "
                               "--url has its own store")
    try:
        summary = run(count, seed, url, database_url, time_scale, username, password,
                      admin_token)
    except DemoError as error:
        raise click.ClickException(str(error)) from None
    for line in summary:
        click.echo(line)


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("fakeproc")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
