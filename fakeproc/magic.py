"""Magic values: amounts, CVVs, postal codes and a `fakeproc_scenario` parameter that misbehave
with no set-up, and survive Twilio's TEST mode (which lets only the test cards through)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from .outcomes import APPROVED, Outcome
from .wire import InvalidRequest, PaymentRequest

SCENARIO_PARAMETER = "fakeproc_scenario"
_ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")

DECLINE_AMOUNTS = {
    2000: "do_not_honor", 2001: "insufficient_funds", 2002: "card_velocity_exceeded",
    2004: "expired_card", 2005: "incorrect_number", 2010: "incorrect_cvc", 2011: "incorrect_zip",
    2012: "lost_card", 2013: "stolen_card", 2014: "fraudulent", 2046: "card_declined",
}


@dataclass(frozen=True)
class Plan:
    """What faults say about one attempt: a delay before answering, and an outcome override."""

    delay: float = 0.0
    outcome: Outcome | None = None
    fired: tuple[str, ...] = ()

    def merged(self, other: Plan) -> Plan:
        """This plan, completed by `other` where this one is silent."""
        return Plan(self.delay or other.delay, self.outcome or other.outcome,
                    self.fired + other.fired)


NOTHING = Plan()


def plan(request: PaymentRequest, attempt: int) -> Plan:
    """The magic-value plan for attempt number `attempt` of a request."""
    result = _scenario(request, attempt)
    for source in (_amount_plan, _field_plan):
        result = result.merged(source(request, attempt))
    return result


def _amount_plan(request: PaymentRequest, attempt: int) -> Plan:
    amount = request.amount
    if amount is None:
        return NOTHING
    whole = int(amount)
    label = f"magic:amount={amount}"
    if 2000 <= whole <= 2999:
        return Plan(outcome=Outcome.decline(DECLINE_AMOUNTS.get(whole, "generic_decline")),
                    fired=(label,))
    if whole == 3000:
        return Plan(outcome=Outcome.decline("processing_error"), fired=(label,))
    if 4000 <= whole <= 4099:
        delay = float(amount - Decimal(4000)) if attempt == 1 else 0.0
        return Plan(delay=delay, outcome=APPROVED, fired=(label,))
    return NOTHING


def _field_plan(request: PaymentRequest, attempt: int) -> Plan:
    if request.cvv == "000":
        return Plan(outcome=Outcome.decline("incorrect_cvc"), fired=("magic:cvv=000",))
    if request.postal_code == "00000":
        return Plan(outcome=Outcome.decline("incorrect_zip"), fired=("magic:postal_code=00000",))
    return NOTHING


def _scenario(request: PaymentRequest, attempt: int) -> Plan:
    script = request.parameters.get(SCENARIO_PARAMETER)
    if not script:
        return NOTHING
    result = NOTHING
    for step in str(script).split(";"):
        name, _, argument = step.strip().partition(":")
        result = result.merged(_scenario_step(name, argument, attempt, request.method))
    return Plan(result.delay, result.outcome, (f"magic:scenario={script}",))


def _scenario_step(name: str, argument: str, attempt: int, method: str) -> Plan:
    if name == "approve":
        return Plan(outcome=APPROVED)
    if name == "decline" and _ERROR_CODE.fullmatch(argument):
        return Plan(outcome=Outcome.decline(argument))
    if name == "delay":
        try:
            seconds = float(argument)
        except ValueError:
            seconds = -1.0
        if 0 <= seconds <= 3600:
            return Plan(delay=seconds if attempt == 1 else 0.0)
    raise InvalidRequest(f"{SCENARIO_PARAMETER} step {name}:{argument} is not understood", method)
