"""`fakeproc serve`: the production server, on a port of its own, locked when reachable."""

from __future__ import annotations

import logging
import sys

import click

from . import check_environment, database_url_option, from_settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="FAKEPROC_HOST",
              help="Address to listen on; beyond loopback the panel and the API are locked.")
@click.option("--port", default=8000, show_default=True, envvar="FAKEPROC_PORT",
              type=click.IntRange(1, 65535), help="Port; refused when anything listens there.")
@click.option("--database-url", envvar="FAKEPROC_DATABASE_URL", callback=database_url_option,
              help="SQLAlchemy URL or SQLite file path; default: ./fakeproc.db. "
                   "PostgreSQL: postgresql+psycopg://user@host/db")
@click.option("--workers", type=click.IntRange(1, 64), default=None, envvar="FAKEPROC_WORKERS",
              help="Worker processes (default: one per core, at most 4).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), envvar="FAKEPROC_CERT",
              help="TLS certificate (PEM); serve HTTPS.")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), envvar="FAKEPROC_KEY",
              help="TLS private key (PEM).")
@click.option("--behind-proxy", is_flag=True, envvar="FAKEPROC_PROXY_FIX",
              help="Honour X-Forwarded-For/-Proto/-Host from one proxy or tunnel in front; "
                   "the panel and the API are then locked.")
@click.option("--time-scale", metavar="SCALE", envvar="FAKEPROC_TIME_SCALE",
              callback=from_settings("TIME_SCALE"),
              help="Multiply every delay, hang and the connector timeout (tests: 0.01).")
@click.option("--access-log", is_flag=True, help="Log every request line to stderr.")
def serve(host: str, port: int, database_url: str | None, workers: int | None,
          cert: str | None, key: str | None, behind_proxy: bool, time_scale: float | None,
          access_log: bool) -> None:
    """Run the production server (gunicorn, gevent workers)."""
    from ..startup import PortClaim

    if bool(cert) != bool(key):
        raise click.UsageError("--cert and --key go together")
    check_environment()
    with PortClaim(host, port):  # before anything is written: a busy port stops here
        _serve(host, port, database_url, workers, cert, key, behind_proxy, time_scale,
               access_log)


def _serve(host: str, port: int, database_url: str | None, workers: int | None,
           cert: str | None, key: str | None, behind_proxy: bool, time_scale: float | None,
           access_log: bool) -> None:
    from .. import create_app, server
    from ..startup import banner, is_exposed, lock_down
    from ..store.models import db

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
    credentials = lock_down(app.config.get("ADMIN_PASSWORD"), app.config.get("ADMIN_TOKEN"),
                            is_exposed(host, behind_proxy))
    app_config.update({key: value for key, value in (
        ("ADMIN_PASSWORD", credentials.admin_password),
        ("ADMIN_TOKEN", credentials.admin_token)) if value})
    with app.app_context():
        db.engine.dispose()
    workers = workers or server.default_workers()
    shown_host = f"[{host}]" if ":" in host else host
    base_url = f"{'https' if cert else 'http'}://{shown_host}:{port}"
    lines = banner(base_url, dict(app.config), credentials, workers, behind_proxy)
    options = server.gunicorn_options(host, port, workers, cert, key, access_log)
    options["when_ready"] = lambda _arbiter: _print(lines)
    server.Server(options, app_config).run()


def _print(lines: list[str]) -> None:
    click.echo("\n".join(lines))
    sys.stdout.flush()


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("fakeproc")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
