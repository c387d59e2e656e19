"""What Twilio will do with a quick-armed fault, in plain words, shown beside the form so that
"every attempt" or "first attempt only" is never a guess.

Twilio's side as fakeproc models it (see the connector emulator): each attempt gets the
connector's timeout; an attempt with no HTTP answer (a timeout, a closed connection) is
retried with the same `transaction_id`, up to five times; any HTTP answer ends the payment.
"""

from __future__ import annotations

from dataclasses import dataclass

TWILIO_RETRIES = 5
_GIVES_UP = f"Twilio gives up after {TWILIO_RETRIES} retries with payment-connector-error"


@dataclass(frozen=True)
class Armed:
    """The quick-arm form's choice, as far as Twilio can tell."""

    action: str
    first_only: bool
    count: int
    timeout: float  # the connector's, in configured seconds
    seconds: float | None = None
    status: int | None = None
    charge: bool = False
    error_code: str | None = None


def effect(armed: Armed) -> str:
    """One or two sentences: what the payment meets, and what Twilio then does."""
    payments = "the next payment" if armed.count == 1 else f"each of the next {armed.count} " \
                                                             "payments"
    explain = _EXPLAIN.get(armed.action)
    return explain(armed, payments) if explain else ""


def _decline(armed: Armed, payments: str) -> str:
    return (f"{_cap(payments)} is declined with {armed.error_code}: Twilio's <Pay> ends at once "
            "with payment-connector-error and that code; a retry would hear the same.")


def _approve(armed: Armed, payments: str) -> str:
    return f"{_cap(payments)} is approved: Twilio's Result is success."


def _delay(armed: Armed, payments: str) -> str:
    waits, budget = _seconds(armed.seconds or 0), _seconds(armed.timeout)
    if (armed.seconds or 0) <= armed.timeout:
        return (f"{_cap(payments)} is answered after {waits}, inside Twilio's {budget}: it "
                "goes through on its first attempt.")
    if armed.first_only:
        return (f"The first attempt of {payments} is answered after {waits}, past Twilio's "
                f"{budget}: Twilio's retry gets the answer, and the charge is made once.")
    return (f"Every attempt of {payments} is answered after {waits}, past Twilio's {budget}: "
            f"{_GIVES_UP}, although the charge was made (an orphan).")


def _hang(armed: Armed, payments: str) -> str:
    if armed.first_only:
        return (f"The first attempt of {payments} is never answered: Twilio's retry gets the "
                "answer" + (", and the charge is made once." if armed.charge else "."))
    return (f"No attempt of {payments} is ever answered: {_GIVES_UP}"
            + ("; the charge is made anyway (an orphan)." if armed.charge
               else "; nothing is charged."))


def _drop(armed: Armed, payments: str) -> str:
    if armed.first_only:
        return (f"The first connection of {payments} is closed without an answer: Twilio's "
                "retry gets the answer.")
    return (f"Every connection of {payments} is closed without an answer: {_GIVES_UP}"
            + ("; the charge is made anyway (an orphan)." if armed.charge
               else "; nothing is charged."))


def _http_error(armed: Armed, payments: str) -> str:
    return (f"{_cap(payments)} gets HTTP {armed.status or 500}: Twilio does not retry an HTTP "
            "answer, so <Pay> ends at once with payment-connector-error.")


_EXPLAIN = {"decline": _decline, "approve": _approve, "delay": _delay, "hang": _hang,
            "drop": _drop, "http_error": _http_error}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _seconds(value: float) -> str:
    return f"{value:g} s"
