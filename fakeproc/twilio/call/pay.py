"""One `<Pay>`, played as Twilio plays it: its attributes checked, each step asked with its
prompt and statusCallback, every entry validated and re-prompted, Twilio's TEST mode applied,
the processor asked through the Generic Pay Connector client, and the fields for the action
URL worked out. Nothing the caller keyed in leaves this module unmasked."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ...processor import TEST_BANK_ACCOUNTS, TEST_CARDS, mask
from ..action_fields import mask_card
from ..gpc_client import Connector
from ..payment_details import BankAccount, Card
from . import pay_rules as rules
from .caller import Press
from .prompts import Moment, choose, confirms_step, default_phrase, prompts_of
from .session import Session
from .twiml import Node
from .webhooks import is_private, resolve

_SECRET_STEPS = {"payment-card-number": 4, "bank-account-number": 2, "security-code": 0}


@dataclass
class PayOutcome:
    """How a `<Pay>` ended: its Result, the fields for the action URL, where they go, and
    whether the call goes on with the TwiML that URL answers."""

    result: str
    fields: dict[str, str]
    action: str
    goes_on: bool = True
    record: dict[str, Any] = field(default_factory=dict)


class PayRun:
    def __init__(self, session: Session, node: Node, document: str, play: Any):
        self.session, self.node, self.document, self.play = session, node, document, play
        self.prompts = prompts_of(node)
        self.captured: dict[str, str] = {}
        self.card_type: str | None = None
        self.verb: rules.PayVerb | None = None
        self.record: dict[str, Any] = {"result": None, "action_params": {},
                                       "status_callbacks": [], "connector_attempts": []}
        self.callback: str | None = None

    def run(self) -> PayOutcome:
        parameters = {child.get("name") or "": child.get("value") or ""
                      for child in self.node.children if child.name == "Parameter"}
        action = resolve(self.document, self.node.get("action") or self.document)
        try:
            self.verb = rules.parse_verb(self.node.attrs, parameters)
            self._check_action(action)
        except rules.InvalidAttribute as error:
            return self._end(rules.VALIDATION_ERROR, action, PaymentError=str(error))
        if self.verb.status_callback:
            self.callback = resolve(self.document, self.verb.status_callback)
        self.session.event("pay", method=self.verb.method, payment_method=self.verb.payment_method,
                           connector=self.verb.payment_connector, steps=list(self.verb.steps))
        for step in self.verb.steps:
            ended = self._ask(step, action)
            if ended is not None:
                return ended
        if isinstance(self.verb.postal_code, str):
            self.captured["postal-code"] = self.verb.postal_code
        return self._process(action)

    # -- asking ------------------------------------------------------------------------------

    def _ask(self, step: str, action: str) -> PayOutcome | None:
        attempt, error = 1, None
        while True:
            self._status(step, attempt)
            press = self._enter(Moment(step, attempt, error, self.card_type))
            if press.hangup or press.star:
                return self._interrupted(press, action)
            value, problem = press.digits, "input-timeout" if press.silent else None
            if problem is None:
                problem = rules.check_entry(step, value, self.verb, self.card_type, date.today())
            if problem is None and confirms_step(self.prompts, step):
                again = self._enter(Moment(step, attempt, error, self.card_type, confirming=True))
                if again.hangup or again.star:
                    return self._interrupted(again, action)
                problem = "input-timeout" if again.silent else (
                    None if again.digits == value else "input-matching-failed")
            if problem is None:
                self.captured[step] = value
                if step == "payment-card-number":
                    self.card_type = rules.accepted_type(value, self.verb)
                return None
            self._status(step, attempt, problem)
            if attempt > self.verb.max_attempts:
                return self._end(rules.TOO_MANY_FAILED, action, PaymentError=problem)
            attempt, error = attempt + 1, problem

    def _enter(self, moment: Moment) -> Press:
        """The moment's prompt plays; the caller answers (or lets the timeout pass)."""
        prompt = choose(self.prompts, moment)
        if prompt is not None:
            self.session.event("prompt", step=moment.step, attempt=moment.attempt,
                               custom=True, confirming=moment.confirming)
            self.play(prompt.node.children, prompt=moment.step)
        else:
            self.session.say(default_phrase(moment), prompt=moment.step, default=True)
        press = self.session.caller.answer(moment.step)
        if press.silent:
            self.session.wait(self.verb.timeout)
        self.session.event("press", step=moment.step, keys=_shown_press(moment.step, press))
        return press

    def _interrupted(self, press: Press, action: str) -> PayOutcome:
        if press.hangup:
            self.session.hang_up()
            self.session.event("hangup", during=self.verb.payment_method if self.verb else None)
            return self._end(rules.HUNG_UP, action, goes_on=False)
        return self._end(rules.STAR, action)

    # -- processing ----------------------------------------------------------------------------

    def _process(self, action: str) -> PayOutcome:
        blocked = self._test_mode_refusal()
        if blocked:
            return self._end(rules.CONNECTOR_ERROR, action, PaymentError=blocked)
        self._status(rules.PROCESSING, 1)
        moment = Moment(rules.PROCESSING, card_type=self.card_type)
        prompt = choose(self.prompts, moment)
        if prompt is not None:
            self.session.event("prompt", step=rules.PROCESSING, attempt=1, custom=True)
            self.play(prompt.node.children, prompt=rules.PROCESSING)
        else:
            self.session.say(default_phrase(moment), prompt=rules.PROCESSING, default=True)
        try:
            connector, body = self._request()
        except ValueError as error:
            return self._end(rules.INTERNAL_ERROR, action, PaymentError=str(error))
        payment = connector.pay(body, bank_account_type=self.verb.bank_account_type
                                if self.verb.payment_method == rules.ACH else None)
        self.session.payments.append(payment)
        for attempt in payment.attempts:
            row = {"number": attempt.number, "outcome": attempt.outcome,
                   "status": attempt.status, "elapsed": round(attempt.elapsed, 3)}
            self.record["connector_attempts"].append(row)
            self.session.event("processor", **row)
        return self._end(payment.fields["Result"], action, fields=payment.fields)

    def _test_mode_refusal(self) -> str | None:
        """Twilio's own TEST mode: only its test cards and accounts reach the processor."""
        if self.session.options.live:
            return None
        number = self.captured.get("payment-card-number")
        if number is not None and number not in TEST_CARDS:
            return f"TEST mode: card {mask_card(number)} is not one of Twilio's test cards; " \
                   "Twilio blocks it before the processor"
        account = self.captured.get("bank-account-number")
        if account is not None and account not in TEST_BANK_ACCOUNTS:
            return f"TEST mode: account {mask(account, 2)} is not one of Twilio's test " \
                   "accounts; Twilio blocks it before the processor"
        return None

    def _request(self) -> tuple[Connector, dict[str, Any]]:
        """The Generic Pay Connector pointed at the `<Pay>`'s connector, and the body."""
        verb, options = self.verb, self.session.options
        url = options.connectors.get(verb.payment_connector) or (
            options.processor.rstrip("/") + f"/connectors/{verb.payment_connector}/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the Pay Connector {verb.payment_connector} has no usable URL: "
                             f"{parts._replace(netloc=parts.hostname or '').geturl()}")
        plain = urlunsplit(parts._replace(netloc=parts.hostname + (
            f":{parts.port}" if parts.port else "")))
        connector = Connector(plain, parts.username, parts.password, options.connector_timeout,
                              options.connector_retries, options.time_scale)
        # The transaction page shows the user agent: the call leads to its payment and back.
        connector.headers["User-Agent"] = f"fakeproc-call CallSid={self.session.call_sid}"
        if verb.payment_method == rules.ACH:
            payment: Card | BankAccount = BankAccount(self.captured["bank-account-number"],
                                                      self.captured["bank-routing-number"],
                                                      verb.bank_account_type)
        else:
            expiry = self.captured["expiration-date"]
            payment = Card(self.captured["payment-card-number"], expiry[:2], expiry[2:],
                           self.captured.get("security-code"), self.captured.get("postal-code"))
        amount = f"{verb.charge_amount}" if verb.method == "charge" else None
        body = connector.build(verb.method, payment, amount, verb.currency, verb.description,
                               verb.parameters or None,
                               None if self.session.payments else options.transaction_id)
        return connector, body

    # -- telling the app ---------------------------------------------------------------------

    def _status(self, step: str, attempt: int, error: str | None = None) -> None:
        if self.callback is None:
            return
        form = {"For": step, "Attempt": str(attempt),
                **({"ErrorType": error} if error else {}),
                "PaymentMethod": self.verb.payment_method, **self._shown(callback=True)}
        answer = self.session.webhooks.send("POST", self.callback, form, "statusCallback")
        self.record["status_callbacks"].append(self.session.webhooks.sent[-1].params)
        self.session.event("status_callback", step=step, attempt=attempt, error=error,
                           status=answer.status)
        if not 200 <= answer.status < 300:
            self.session.warnings.append(f"statusCallback {self.callback} answered HTTP "
                                         f"{answer.status}")

    def _shown(self, callback: bool) -> dict[str, str]:
        """What has been captured, as Twilio shows it: numbers masked, the code redacted."""
        got, shown = self.captured, {}
        if "payment-card-number" in got:
            shown["PaymentCardNumber"] = mask_card(got["payment-card-number"])
            if self.card_type:
                shown["PaymentCardType"] = self.card_type
        if "expiration-date" in got:
            shown["ExpirationDate"] = got["expiration-date"]
        if "security-code" in got:
            shown["SecurityCode"] = ("x" if callback else "*") * len(got["security-code"])
        if "postal-code" in got:
            shown["PaymentCardPostalCode"] = got["postal-code"]
        if "bank-routing-number" in got:
            shown["BankRoutingNumber"] = got["bank-routing-number"]
        if "bank-account-number" in got:
            shown["BankAccountNumber"] = mask(got["bank-account-number"], 2)
        if self.verb is not None and self.verb.payment_method == rules.ACH and got:
            shown["BankAccountType"] = self.verb.bank_account_type
        return shown

    def _end(self, result: str, action: str, goes_on: bool = True,
             fields: dict[str, str] | None = None, **error: str) -> PayOutcome:
        if fields is None:
            method = {"PaymentMethod": self.verb.payment_method} if self.verb else {}
            fields = {"Result": result, **error, **method, **self._shown(callback=False)}
        self.record.update(result=result, action_params=fields)
        self.session.outcomes.append(fields)
        self.session.event("pay_result", result=result,
                           error=fields.get("PaymentError") or None)
        return PayOutcome(result, fields, action, goes_on, self.record)

    def _check_action(self, action: str) -> None:
        scheme = urlsplit(action).scheme
        if scheme == "https":
            return
        if scheme == "http" and not self.session.options.strict and is_private(action):
            self.session.event("note", text=f"the action URL {action} is http: Twilio takes only "
                                            "https, the emulator lets it through on this machine")
            return
        raise rules.InvalidAttribute(f"action={action!r} (Twilio takes only an https URL)")


def _shown_press(step: str, press: Press) -> str:
    if press.hangup:
        return "hangup"
    if press.silent:
        return "silence"
    if step in _SECRET_STEPS and not press.star:
        visible = _SECRET_STEPS[step]
        digits = press.digits
        return mask(digits, visible) + ("#" if (press.keys or "").endswith("#") else "")
    return press.keys or ""
