"""`fakeproc pay`: one `<Pay>` payment as Twilio makes it, sent to the processor at URL: a call
whose app answers a single `<Pay>`, so the same validation, TEST mode, Result mapping and
masking apply as in `fakeproc call`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import click

from .traffic import _agreed_scale, _check_url, _clock, _scale

if TYPE_CHECKING:
    from ..twilio import Payment


@click.command()
@click.argument("url")
@click.option("--card", "card_number", metavar="NUMBER", help="Card number (a card payment).")
@click.option("--expiry", metavar="MM/YY", help="Card expiry, MM/YY or MM/YYYY.")
@click.option("--cvv", help="Card security code; leave out for <Pay securityCode=\"false\">.")
@click.option("--postal-code", help="Card postal code; leave out for postalCode=\"false\".")
@click.option("--ach", is_flag=True, help="An ACH debit: give --account and --routing.")
@click.option("--account", metavar="NUMBER", help="Bank account number (ACH).")
@click.option("--routing", metavar="NUMBER", help="Bank routing number (ACH).")
@click.option("--account-type", default="consumer-checking", show_default=True,
              type=click.Choice(["consumer-checking", "consumer-savings",
                                 "commercial-checking"]), help="<Pay> bankAccountType (ACH).")
@click.option("--amount", help="<Pay> chargeAmount, e.g. 10.00; 0 tokenizes, as in <Pay>.")
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
@click.option("--live", is_flag=True, help="Lift TEST mode: Twilio then lets any card through.")
@click.option("--action-url", help="POST the fields, form-encoded, to this <Pay> action URL.")
@click.option("--auth-token", help="Sign the action-URL request (X-Twilio-Signature).")
@click.option("--json", "as_json", is_flag=True, help="Print the payment as JSON.")
def pay(url: str, card_number: str | None, expiry: str | None, cvv: str | None,
        postal_code: str | None, ach: bool, account: str | None, routing: str | None,
        account_type: str, amount: str | None, currency: str, description: str | None,
        tokenize: bool, username: str | None, password: str | None,
        parameters: tuple[str, ...], transaction_id: str | None, timeout: float, retries: int,
        time_scale: float | None, live: bool, action_url: str | None, auth_token: str | None,
        as_json: bool) -> None:
    """Act as Twilio for one <Pay> payment sent to the processor at URL: the caller keys the
    card or account, Twilio checks it, sends it through the Generic Pay Connector (timeout,
    retries), and prints what the <Pay> action URL receives.

    Exits 0 when Result is success (and the action URL, if given, answered 2xx), else 1."""
    from ..twilio import BankAccount, Card
    from ..twilio.call import DEFAULT_AUTH_TOKEN, CallOptions
    from ..twilio.call.one_pay import OnePay, pay_once

    if tokenize == (amount is not None):
        raise click.UsageError("give --amount for a charge (0 tokenizes), or --tokenize "
                               "without one")
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
    options = CallOptions(auth_token=auth_token or DEFAULT_AUTH_TOKEN, live=live,
                          time_scale=scale, connector_timeout=timeout,
                          connector_retries=retries, transaction_id=transaction_id)
    session, forwarded = pay_once(OnePay(payment, amount, currency, description,
                                         _pairs(parameters), action_url, auth_token),
                                  _with_credentials(url, username, password), options)
    fields = session.outcomes[0] if session.outcomes else {"Result": "internal-error"}
    done = session.payments[0] if session.payments else None
    action = None if not action_url else (
        {"error": forwarded.error} if forwarded.error else
        {"status": forwarded.status, "body": forwarded.body.decode("utf-8", "replace")})
    if as_json:
        shown = done.to_dict() if done is not None else {
            "transaction_id": None, "method": "tokenize" if amount is None else "charge",
            "request": None, "failure": None, "attempts": []}
        click.echo(json.dumps({**shown, "result": fields["Result"], "fields": fields,
                               "action_url": action, "call_sid": session.call_sid},
                              indent=2))
    else:
        for line in _report(done, fields, url, timeout, scale, action):
            click.echo(line)
    action_ok = not action_url or (forwarded.status is not None
                                   and 200 <= forwarded.status < 300)
    click.get_current_context().exit(0 if fields["Result"] == "success" and action_ok else 1)


def _with_credentials(url: str, username: str | None, password: str | None) -> str:
    """The processor URL carrying the connector's Basic-auth credentials, as `fakeproc call`
    takes a connector's."""
    if username is None and password is None:
        return url
    parts = urlsplit(url)
    user = f"{quote(username or '', safe='')}:{quote(password or '', safe='')}@"
    return parts._replace(netloc=user + parts.netloc.rpartition("@")[2]).geturl()


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


def _report(payment: Payment | None, fields: dict[str, str], url: str, timeout: float,
            scale: float, action: dict[str, Any] | None) -> list[str]:
    """The attempt timeline (real seconds) and the action-URL fields, for people."""
    if payment is None:
        lines = [f"not sent to {url}: Twilio ended the <Pay> first"]
    else:
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
    lines += [f"{name}={value}" for name, value in fields.items()]
    if action is not None:
        lines.append(f"action URL: HTTP {action['status']}" if "status" in action
                     else f"action URL: failed: {action['error']}")
    return lines
