"""The commands that send traffic: `demo` (realistic payments into a store) and `check` (is a
processor endpoint what Twilio expects?), and what `pay` and `call` share with them.

`pay` and `check` ask the server's `/api/health` for its time scale first, so that Twilio's
timeout means on both sides what it means to the server; every duration they print is real.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import click
from click.core import ParameterSource

from ..config import DEFAULT_TIMEOUT_SECONDS
from . import check_environment, database_url_option


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
    else:
        _check_url(url, "--url")
    if url and time_scale is None:
        time_scale = _agreed_scale(url, None)
    with Progress(count, "transactions sent") as progress:
        try:
            summary = run(count, seed, url, database_url, time_scale, username, password,
                          admin_token, progress=progress.advance, stage=progress.stage)
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
        else:  # a log hears at once that work began: starting a server here takes seconds
            self._line()
        return self

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        if self._bar is not None:
            self._bar.update(steps)
        elif self.done >= self.total or time.monotonic() - self._shown_at >= self.EVERY_SECONDS:
            self._line()

    def stage(self, text: str) -> None:
        """A new stage after the counted work: the bar, if any, ends; one line says what
        comes now."""
        self.__exit__(None, None, None)
        self._bar = None
        click.echo(f"fakeproc: {text}", err=True)

    def _line(self) -> None:
        self._shown_at = time.monotonic()
        click.echo(f"fakeproc: {self.done:,} of {self.total:,} {self.what} "
                   f"({self.done * 100 // self.total}%)", err=True)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


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


def _check_url(url: str, hint: str = "URL") -> None:
    """A usage error for a URL no request can go to: another scheme, no host, a port that is
    not one (urlsplit only finds out when asked for it)."""
    try:
        parts = urlsplit(url)
        parts.port  # a port that is not a number from 0 to 65535 raises here
    except ValueError as error:
        raise click.BadParameter(f"{url} is not a usable URL: {error}",
                                 param_hint=hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{url} is not an http:// or https:// URL", param_hint=hint)


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
    from ..twilio.server_clock import real_seconds

    return real_seconds(configured, scale)
