"""`fakeproc call`: play Twilio for one inbound call to a TwiML app, with a scripted caller."""

from __future__ import annotations

import json
from typing import Any

import click

from .traffic import _agreed_scale, _check_url, _scale

RESULTS = ("success", "too-many-failed-attempts", "payment-connector-error",
           "caller-interrupted-with-star", "caller-hung-up", "validation-error",
           "internal-error")


def _presses(_ctx: object, _param: object, values: tuple[str, ...]) -> list[Any]:
    from ..twilio.call import parse_press

    try:
        return [parse_press(value) for value in values]
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _connectors(_ctx: object, _param: object, values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise click.BadParameter(f"{item!r} is not NAME=URL")
        pairs[name] = url
    return pairs


@click.command()
@click.argument("url")
@click.option("--method", type=click.Choice(["POST", "GET"], case_sensitive=False),
              default="POST", show_default=True, help="How the voice URL is requested.")
@click.option("--press", "presses", multiple=True, metavar="INPUT", callback=_presses,
              help="The caller's answer at the next input point: digits (a trailing # "
                   "allowed), *, silence or hangup; repeat in order. Then: silence.")
@click.option("--from", "caller_id", default="+15005550006", show_default=True,
              help="The caller's number (From).")
@click.option("--to", "called", default="+15005550001", show_default=True,
              help="The number called (To).")
@click.option("--auth-token", default=None,
              help="Signs every request (X-Twilio-Signature); default: the documented one.")
@click.option("--processor", default="http://127.0.0.1:8000", show_default=True,
              help="Where a Pay Connector sends, at /connectors/<name>/ (a fakeproc).")
@click.option("--connector", "connectors", multiple=True, metavar="NAME=URL",
              callback=_connectors, help="The URL of one Pay Connector (user:password@ for "
                                         "Basic auth); repeat for more.")
@click.option("--live", is_flag=True, help="Lift TEST mode's allow-list of test cards.")
@click.option("--time-scale", type=float, default=None, callback=_scale,
              help="Scales the connector timeout and every wait of the call; default: the "
                   "processor's, when it is a fakeproc, else 1.")
@click.option("--strict", is_flag=True,
              help="An http action URL is a validation error even on this machine.")
@click.option("--expect-result", type=click.Choice(RESULTS), default=None,
              help="Exit 1 unless every <Pay> ended with this Result.")
@click.option("--json", "as_json", is_flag=True, help="Print the call as JSON.")
def call(url: str, method: str, presses: list[Any], caller_id: str, called: str,
         auth_token: str | None, processor: str, connectors: dict[str, str], live: bool,
         time_scale: float | None, strict: bool, expect_result: str | None,
         as_json: bool) -> None:
    """Play Twilio for one inbound call to the TwiML app at URL, with a scripted caller.

    Exits 0 when the call ran to its end and every answer of the app was 2xx TwiML, else 1."""
    from ..twilio.call import (
        DEFAULT_AUTH_TOKEN,
        CallOptions,
        HttpApp,
        lines,
        place_call,
        to_dict,
    )

    _check_url(url)
    options = CallOptions(method=method.upper(), caller_id=caller_id, called=called,
                          auth_token=auth_token or DEFAULT_AUTH_TOKEN, processor=processor,
                          connectors=connectors, live=live,
                          time_scale=_agreed_scale(processor, time_scale), strict=strict)
    session = place_call(HttpApp(), url, presses, options)
    report = to_dict(session)
    click.echo(json.dumps(report, indent=2) if as_json else "\n".join(lines(session)))
    ok = report["status"] == "completed" and not report["warnings"]
    if expect_result is not None:
        ok = ok and bool(report["pays"]) and all(pay["result"] == expect_result
                                                for pay in report["pays"])
    click.get_current_context().exit(0 if ok else 1)
