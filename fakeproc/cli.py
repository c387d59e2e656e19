"""The `fakeproc` command: `serve` for the production server, plus Flask's own commands
(`fakeproc db upgrade`, `fakeproc routes`, …) on the same app."""

from __future__ import annotations

import logging
import secrets
import sys
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource
from flask.cli import FlaskGroup

from .config import LOOPBACK_HOSTS

if TYPE_CHECKING:
    from .connector import Payment


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


@main.command(with_appcontext=False)
@click.argument("url")
@click.option("--card", "card_number", metavar="NUMBER", help="Card number (a card payment).")
@click.option("--expiry", metavar="MM/YY", help="Card expiry, MM/YY or MM/YYYY.")
@click.option("--cvv", help="Card security code; leave out for <Pay securityCode=\"false\">.")
@click.option("--postal-code", help="Card postal code.")
@click.option("--ach", is_flag=True, help="An ACH debit: give --account and --routing.")
@click.option("--account", metavar="NUMBER", help="Bank account number (ACH).")
@click.option("--routing", metavar="NUMBER", help="Bank routing number (ACH).")
@click.option("--account-type", default="consumer-checking", show_default=True,
              type=click.Choice(["consumer-checking", "consumer-savings",
                                 "commercial-checking"]), help="<Pay> bankAccountType (ACH).")
@click.option("--amount", help="Amount to charge, e.g. 10.00 (not with --tokenize).")
@click.option("--currency", default="USD", show_default=True)
@click.option("--description", help="<Pay> description.")
@click.option("--tokenize", is_flag=True, help="Ask for a token instead of a charge.")
@click.option("--username", envvar="FAKEPROC_USERNAME", help="The connector's username.")
@click.option("--password", envvar="FAKEPROC_PASSWORD", help="The connector's password.")
@click.option("--parameter", "parameters", multiple=True, metavar="KEY=VALUE",
              help="A custom <Parameter> sent to the processor; repeat for more.")
@click.option("--transaction-id", help="Default: a fresh PK… id.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, help="Seconds Twilio waits for each attempt.")
@click.option("--retries", type=click.IntRange(0, 100), default=5, show_default=True,
              help="Retries after a timeout or a broken connection.")
@click.option("--time-scale", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Multiplies the timeout; match the server's scale.")
@click.option("--action-url", help="POST the fields, form-encoded, to this <Pay> action URL.")
@click.option("--auth-token", help="Sign the action-URL request (X-Twilio-Signature).")
@click.option("--json", "as_json", is_flag=True, help="Print the payment as JSON.")
def pay(url: str, card_number: str | None, expiry: str | None, cvv: str | None,
        postal_code: str | None, ach: bool, account: str | None, routing: str | None,
        account_type: str, amount: str | None, currency: str, description: str | None,
        tokenize: bool, username: str | None, password: str | None,
        parameters: tuple[str, ...], transaction_id: str | None, timeout: float, retries: int,
        time_scale: float, action_url: str | None, auth_token: str | None,
        as_json: bool) -> None:
    """Act as Twilio's Generic Pay Connector: send one <Pay> payment to the processor at URL,
    retry as Twilio does, and print what the <Pay> action URL would receive.

    Exits 0 when Result is success (and the action URL, if given, answered 2xx), else 1."""
    import json

    from .connector import BankAccount, Card, Connector

    if tokenize == (amount is not None):
        raise click.UsageError("give --amount for a charge, or --tokenize without one")
    if ach:
        if card_number or not (account and routing):
            raise click.UsageError("--ach takes --account and --routing, not --card")
        payment: Card | BankAccount = BankAccount(account, routing, account_type)
    else:
        if not (card_number and expiry):
            raise click.UsageError("a card payment needs --card and --expiry (or use --ach)")
        payment = Card(card_number, *_expiry(expiry), cvv=cvv, postal_code=postal_code)
    try:
        connector = Connector(url, username, password, timeout, retries, time_scale)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    body = connector.build("tokenize" if tokenize else "charge", payment, amount, currency,
                           description, _pairs(parameters), transaction_id)
    done = connector.pay(body, action_url, bank_account_type=account_type if ach else None,
                         auth_token=auth_token)
    if as_json:
        click.echo(json.dumps(done.to_dict(), indent=2))
    else:
        for line in _report(done, url, connector.timeout * connector.time_scale):
            click.echo(line)
    action_ok = not action_url or (done.action_response is not None
                                   and 200 <= done.action_response[0] < 300)
    click.get_current_context().exit(0 if done.result == "success" and action_ok else 1)


@main.command(with_appcontext=False)
@click.argument("url")
@click.option("--username", help="Basic-auth username of the connector.")
@click.option("--password", help="Basic-auth password of the connector.")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Scale of Twilio's 10 s timeout (0.01 against a fakeproc at that scale).")
@click.option("--slow-amount", default="4012.00", show_default=True,
              help="An amount the processor answers slowly on a first attempt "
                   "(fakeproc's magic delay); elsewhere that check is skipped.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(url: str, username: str | None, password: str | None, time_scale: float,
          slow_amount: str, as_json: bool) -> None:
    """Check that the processor endpoint at URL behaves as Twilio expects; exit 1 if not."""
    import json

    from .conformance import check as run_checks

    try:
        report = run_checks(url, username, password, time_scale, slow_amount)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.render())
    click.get_current_context().exit(0 if report.passed else 1)


def _expiry(text: str) -> tuple[int, int]:
    month, _, year = text.partition("/")
    if not (month.isdigit() and year.isdigit() and 1 <= len(month) <= 2
            and len(year) in (2, 4)):
        raise click.BadParameter("MM/YY or MM/YYYY, e.g. 12/30", param_hint="--expiry")
    return int(month), int(year)


def _pairs(parameters: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in parameters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--parameter")
        pairs[key] = value
    return pairs


def _report(payment: Payment, url: str, budget: float) -> list[str]:
    """The attempt timeline and the action-URL fields, for people."""
    shown = payment.to_dict()
    lines = [(f"{payment.method} {payment.transaction_id} to {url} "
              f"(each attempt given {budget:g} s)")]
    first = payment.attempts[0].started_at
    for attempt, row in zip(payment.attempts, shown["attempts"], strict=True):
        what = f"HTTP {row['status']}" if attempt.answered else row["outcome"]
        body = row["body"] if len(row["body"]) <= 200 else row["body"][:200] + "…"
        offset = (attempt.started_at - first).total_seconds()
        lines.append(f"  attempt {attempt.number} at +{offset:.3f} s: {what} after "
                     f"{attempt.elapsed:.3f} s" + (f"  {body}" if body else ""))
    lines += [f"{name}={value}" for name, value in payment.fields.items()]
    if shown["action_url"] is not None:
        action = shown["action_url"]
        lines.append(f"action URL: HTTP {action['status']}" if "status" in action
                     else f"action URL: failed: {action['error']}")
    return lines


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("fakeproc")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
