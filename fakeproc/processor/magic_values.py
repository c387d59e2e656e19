"""Magic values: amounts, CVVs, postal codes and a `fakeproc_scenario` parameter that misbehave
with no set-up, and survive Twilio's TEST mode (which lets only the test cards through)."""

from __future__ import annotations

import re
from decimal import Decimal

from .faults import MALFORMED_VARIANTS, NOTHING, Fault, Plan
from .outcomes import APPROVED, Outcome
from .wire import InvalidRequest, PaymentRequest

SCENARIO_PARAMETER = "fakeproc_scenario"
_ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")

DECLINE_AMOUNTS = {
    2000: "do_not_honor", 2001: "insufficient_funds", 2002: "card_velocity_exceeded",
    2004: "expired_card", 2005: "incorrect_number", 2010: "incorrect_cvc", 2011: "incorrect_zip",
    2012: "lost_card", 2013: "stolen_card", 2014: "fraudulent", 2046: "card_declined",
}


# 4300.00-4307.00: one broken answer each.
BROKEN_AMOUNTS = ("not_json", "drop", "missing_id", "html", "empty", "truncated",
                  "null_id_no_error", "wrong_id_key")
_HANG_SECONDS = 65.0

# The table as the admin panel shows it (the README has the same table in prose).
REFERENCE: tuple[tuple[str, str], ...] = (
    ("amount 2000.00–2999.99", "decline; error_code by the integer part: "
     + ", ".join(f"{whole} {code}" for whole, code in DECLINE_AMOUNTS.items())
     + ", any other generic_decline"),
    ("amount 3000.00–3000.99", "decline with processing_error"),
    ("amount 4000.00–4099.99", "the first attempt waits (amount − 4000) s, then approves"),
    ("amount 4100.00", f"every attempt hangs ({_HANG_SECONDS:.0f} s, then closed); no charge"),
    ("amount 4101.00", "every attempt hangs; charged anyway: an orphan"),
    ("amount 4300.00–4307.00", "one broken answer each, charged anyway: "
     + ", ".join(f"{4300 + index} {variant}" for index, variant in enumerate(BROKEN_AMOUNTS))),
    ("amount 4400.00–4599.99", "HTTP status = integer part − 4000; no charge"),
    ("cvv 000", "decline with incorrect_cvc"),
    ("postal_code 00000", "decline with incorrect_zip"),
    (f"parameter {SCENARIO_PARAMETER}", "steps joined by ;: decline:<error_code>, "
     "delay:<seconds> (first attempt), hang, hang_charge, drop, http:<status>, "
     "malformed:<variant>, approve"),
)


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
        delay = float(amount - Decimal(4000)) if attempt == 1 else None
        return Plan(delay=delay, outcome=APPROVED, fired=(label,))
    if whole in (4100, 4101):
        charge = whole == 4101
        return Plan(fault=Fault("hang", charge=charge, seconds=_HANG_SECONDS),
                    outcome=APPROVED if charge else None, fired=(label,))
    if 4300 <= whole <= 4307:
        return Plan(fault=_broken(BROKEN_AMOUNTS[whole - 4300]), outcome=APPROVED,
                    fired=(label,))
    if 4400 <= whole <= 4599:
        return Plan(fault=Fault("http_error", charge=False, status=whole - 4000), fired=(label,))
    return NOTHING


def _broken(variant: str) -> Fault:
    if variant == "drop":
        return Fault("drop", charge=True)
    return Fault("malformed", charge=True, variant=variant)


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
        step_plan = _scenario_step(step.strip(), name, argument, attempt, request.method)
        result = Plan(delay=result.delay if result.delay is not None else step_plan.delay,
                      fault=result.fault or step_plan.fault,
                      outcome=result.outcome or step_plan.outcome)
    return Plan(delay=result.delay, fault=result.fault, outcome=result.outcome,
                fired=(f"magic:scenario={script}",))


def _scenario_step(step: str, name: str, argument: str, attempt: int, method: str) -> Plan:
    if name == "approve" and not argument:
        return Plan(outcome=APPROVED)
    if name == "decline" and _ERROR_CODE.fullmatch(argument):
        return Plan(outcome=Outcome.decline(argument))
    if name == "delay" and _seconds(argument) is not None:
        return Plan(delay=_seconds(argument) if attempt == 1 else None)
    if name in ("hang", "hang_charge") and not argument:
        charge = name == "hang_charge"
        return Plan(fault=Fault("hang", charge=charge, seconds=_HANG_SECONDS),
                    outcome=APPROVED if charge else None)
    if name == "drop" and not argument:
        return Plan(fault=Fault("drop", charge=True))
    if name == "http" and argument.isascii() and argument.isdigit() \
            and 400 <= int(argument) <= 599:
        return Plan(fault=Fault("http_error", charge=False, status=int(argument)))
    if name == "malformed" and argument in MALFORMED_VARIANTS:
        return Plan(fault=_broken(argument))
    raise InvalidRequest(f"{SCENARIO_PARAMETER} step {step} is not understood", method)


def _seconds(text: str) -> float | None:
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None
