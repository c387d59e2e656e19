"""The commands that send traffic: `demo` (realistic payments into a store), `pay` (one payment
as Twilio sends it) and `check` (is a processor endpoint what Twilio expects?).

`pay` and `check` ask the server's `/api/health` for its time scale first, so that Twilio's
timeout means on both sides what it means to the server; every duration they print is real.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click
from click.core import ParameterSource

from ..config import DEFAULT_TIMEOUT_SECONDS
from . import check_environment, database_url_option

if TYPE_CHECKING:
    from ..twilio import Payment


def _scale(_ctx: Any, _param: Any, value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter("a number greater than 0, e.g. 1 or 0.01")
    return value


@click.command()
@click.option("--count", default=120, show_default=True, type=click.IntRange(1, 100_000),
              help="How many transactions to send.")
@click.option("--seed", type=int, default=None,
              help="Same seed, same customers, orders, amounts and mix of stories.")
@click.option("--database-url", envvar="FAKEPROC_DATABASE_URL", callback=database_url_option,
              help="Store of the embedded server; default: as for serve (./fakeproc.db).")
@click.option("--url", help="Send to a running fakeproc (e.g. http://127.0.0.1:8000) instead "
                            "of starting one here.")
@click.option("--username", envvar="FAKEPROC_USERNAME",
              help="Basic-auth username of the connector to send to.")
@click.option("--password", envvar="FAKEPROC_PASSWORD", help="Its password.")
@click.option("--admin-token", envvar="FAKEPROC_ADMIN_TOKEN",
              help="Bearer token of the control API, when the server needs one.")
@click.option("--time-scale", type=float, default=None, callback=_scale,
              help="The embedded server's time scale (default 0.01); with --url, default: "
                   "the scale that server reports.")
def demo(count: int, seed: int | None, database_url: str | None, url: str | None,
         username: str | None, password: str | None, admin_token: str | None,
         time_scale: float | None) -> None:
    """Fill the store with realistic traffic, sent through the processor endpoint."""
    from ..demo import DemoError, run

    given = click.get_current_context().get_parameter_source("database_url")
    if url and given == ParameterSource.COMMANDLINE:
        raise click.UsageError("--database-url is for the embedded server; the server at "
                               "--url has its own store")
    if url is None:
        check_environment()
    if url and time_scale is None:
        time_scale = _agreed_scale(url, None)
    with Progress(count, "transactions sent") as progress:
        try:
            summary = run(count, seed, url, database_url, time_scale, username, password,
                          admin_token, progress=progress.advance)
        except DemoError as error:
            raise click.ClickException(str(error)) from None
    for line in summary:
        click.echo(line)


class Progress:
    """How far long work has come: a bar on a terminal, else a line every few seconds."""

    EVERY_SECONDS = 5.0

    def __init__(self, total: int, what: str):
        self.total, self.what, self.done = total, what, 0
        self._bar: Any = None
        self._shown_at = time.monotonic()

    def __enter__(self) -> Progress:
        if sys.stderr.isatty():
            self._bar = click.progressbar(length=self.total, label=self.what, file=sys.stderr)
            self._bar.__enter__()
        return self

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        if self._bar is not None:
            self._bar.update(steps)
        elif time.monotonic() - self._shown_at >= self.EVERY_SECONDS:
            self._shown_at = time.monotonic()
            click.echo(f"fakeproc: {self.done:,} of {self.total:,} {self.what} "
                       f"({self.done * 100 // self.total}%)", err=True)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


@click.command()
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
              show_default=True, help="Seconds Twilio waits for each attempt (before scaling).")
@click.option("--retries", type=click.IntRange(0, 100), default=5, show_default=True,
              help="Retries after a timeout or a broken connection.")
@click.option("--time-scale", type=float, default=None, callback=_scale,
              help="Multiplies the timeout; default: the scale the fakeproc at URL reports "
                   "(1 for any other processor).")
@click.option("--action-url", help="POST the fields, form-encoded, to this <Pay> action URL.")
@click.option("--auth-token", help="Sign the action-URL request (X-Twilio-Signature).")
@click.option("--json", "as_json", is_flag=True, help="Print the payment as JSON.")
def pay(url: str, card_number: str | None, expiry: str | None, cvv: str | None,
        postal_code: str | None, ach: bool, account: str | None, routing: str | None,
        account_type: str, amount: str | None, currency: str, description: str | None,
        tokenize: bool, username: str | None, password: str | None,
        parameters: tuple[str, ...], transaction_id: str | None, timeout: float, retries: int,
        time_scale: float | None, action_url: str | None, auth_token: str | None,
        as_json: bool) -> None:
    """Act as Twilio's Generic Pay Connector: send one <Pay> payment to the processor at URL,
    retry as Twilio does, and print what the <Pay> action URL would receive.

    Exits 0 when Result is success (and the action URL, if given, answered 2xx), else 1."""
    from ..twilio import BankAccount, Card, Connector

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
    _check_url(url)
    scale = _agreed_scale(url, time_scale)
    connector = Connector(url, username, password, timeout, retries, scale)
    body = connector.build("tokenize" if tokenize else "charge", payment, amount, currency,
                           description, _pairs(parameters), transaction_id)
    done = connector.pay(body, action_url, bank_account_type=account_type if ach else None,
                         auth_token=auth_token)
    if as_json:
        click.echo(json.dumps(done.to_dict(), indent=2))
    else:
        for line in _report(done, url, timeout, scale):
            click.echo(line)
    action_ok = not action_url or (done.action_response is not None
                                   and 200 <= done.action_response[0] < 300)
    click.get_current_context().exit(0 if done.result == "success" and action_ok else 1)


@click.command()
@click.argument("url")
@click.option("--username", help="Basic-auth username of the connector.")
@click.option("--password", help="Basic-auth password of the connector.")
@click.option("--time-scale", type=float, default=None, callback=_scale,
              help="Scale of Twilio's 10 s timeout; default: the scale the fakeproc at URL "
                   "reports (1 for any other processor).")
@click.option("--slow-amount", default="4012.00", show_default=True,
              help="An amount the processor answers slowly on a first attempt "
                   "(fakeproc's magic delay); elsewhere that check is skipped.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON (progress goes to stderr).")
def check(url: str, username: str | None, password: str | None, time_scale: float | None,
          slow_amount: str, as_json: bool) -> None:
    """Check that the processor endpoint at URL behaves as Twilio expects; exit 1 if not.

    Each check is printed as it ends; against an endpoint that answers nothing the run ends
    after the first check's timeout."""
    from ..twilio import Connector
    from ..twilio.conformance import Checker, render_check

    _check_url(url)
    scale = _agreed_scale(url, time_scale)
    checker = Checker(Connector(url, username, password, time_scale=scale), slow_amount)
    to_stderr = as_json
    click.echo(f"Generic Pay Connector conformance of {url}: each attempt given "
               f"{_clock(DEFAULT_TIMEOUT_SECONDS, scale)}", err=to_stderr)
    report = checker.run(on_check=lambda done: click.echo(render_check(done), err=to_stderr))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.summary())
    click.get_current_context().exit(0 if report.passed else 1)


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{url} is not an http:// or https:// URL", param_hint="URL")


def _agreed_scale(url: str, given: float | None) -> float:
    """The time scale to run Twilio's side at: the one given, else the server's own; a
    fakeproc at another scale than the one given is warned about."""
    from ..twilio import served_time_scale
    from . import warn

    # A silent endpoint costs this wait; when the scale is given, no more than one timeout.
    served = served_time_scale(url, 2.0 if given is None else
                               min(2.0, max(0.2, DEFAULT_TIMEOUT_SECONDS * given)))
    if given is None:
        return served if served is not None else 1.0
    if served is not None and not math.isclose(served, given):
        warn(f"the fakeproc at {url} runs at time scale {served:g}, not {given:g}: its delays "
             f"and hangs are scaled by {served:g}, Twilio's timeout here by {given:g}")
    return given


def _clock(configured: float, scale: float) -> str:
    """Real seconds, with the configured ones and the scale when they differ."""
    real = configured * scale
    if math.isclose(scale, 1.0):
        return f"{real:g} s"
    return f"{real:g} s (Twilio's {configured:g} s at time scale {scale:g})"


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


def _report(payment: Payment, url: str, timeout: float, scale: float) -> list[str]:
    """The attempt timeline (real seconds) and the action-URL fields, for people."""
    shown = payment.to_dict()
    lines = [f"{payment.method} {payment.transaction_id} to {url}: each attempt given "
             f"{_clock(timeout, scale)}"]
    first = payment.attempts[0].started_at
    for attempt, row in zip(payment.attempts, shown["attempts"], strict=True):
        what = f"HTTP {row['status']}" if attempt.answered else row["outcome"]
        body = " ".join(row["body"].split())
        body = body if len(body) <= 200 else body[:199] + "…"
        offset = (attempt.started_at - first).total_seconds()
        lines.append(f"  attempt {attempt.number} at +{offset:.3f} s: {what} after "
                     f"{attempt.elapsed:.3f} s" + (f"  {body}" if body else ""))
    lines += [f"{name}={value}" for name, value in payment.fields.items()]
    if shown["action_url"] is not None:
        action = shown["action_url"]
        lines.append(f"action URL: HTTP {action['status']}" if "status" in action
                     else f"action URL: failed: {action['error']}")
    return lines
