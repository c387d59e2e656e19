"""Faults as small composable pieces: what one attempt should suffer, and what it decides.

A `Plan` is assembled from rules first, then magic values: each fills only what is still empty,
so a rule's delay and a magic amount's decline combine, and a rule beats a magic value.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .outcomes import APPROVED, Outcome

CONNECTION_FAULTS = ("hang", "drop")
# How an answer can be broken (a `malformed` rule, the 4300 amounts, a scenario step).
MALFORMED_VARIANTS = ("not_json", "html", "empty", "missing_id", "null_id_no_error",
                      "wrong_id_key", "truncated")


@dataclass(frozen=True)
class Fault:
    """A broken delivery: `hang`, `drop`, `http_error` or `malformed`."""

    kind: str
    charge: bool
    seconds: float = 0.0  # hang
    status: int | None = None  # http_error, malformed
    body: str | None = None  # http_error
    variant: str | None = None  # malformed

    @property
    def breaks_connection(self) -> bool:
        return self.kind in CONNECTION_FAULTS or self.variant == "truncated"


@dataclass(frozen=True)
class Plan:
    """What faults say about one attempt. Empty fields are filled by later sources."""

    delay: float | None = None
    fault: Fault | None = None
    outcome: Outcome | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    fired: tuple[str, ...] = ()
    # Rules this plan used, and those of them with a `remaining` count to consume.
    rules: tuple[int, ...] = ()
    counted: tuple[int, ...] = ()

    @property
    def delivery_set(self) -> bool:
        return self.delay is not None or self.fault is not None

    @property
    def decides(self) -> bool:
        """Whether an attempt following this plan may decide the transaction's outcome."""
        return self.fault is None or self.fault.charge

    @property
    def holds(self) -> bool:
        """Whether an attempt following this plan is held for a while (delay or hang)."""
        return bool(self.delay) or (self.fault is not None and self.fault.kind == "hang")

    def merged(self, other: Plan) -> Plan:
        """This plan, completed by `other` where this one is silent."""
        take_delivery = not self.delivery_set and other.delivery_set
        take_outcome = self.outcome is None and other.outcome is not None
        if not (take_delivery or take_outcome or other.parameters):
            return self
        return Plan(
            delay=other.delay if take_delivery else self.delay,
            fault=other.fault if take_delivery else self.fault,
            outcome=other.outcome if take_outcome else self.outcome,
            parameters={**other.parameters, **self.parameters},
            fired=_union(self.fired, other.fired),
            rules=_union(self.rules, other.rules),
            counted=_union(self.counted, other.counted),
        )

    def without_outcome(self) -> Plan:
        return replace(self, outcome=None)


NOTHING = Plan()


def _union(first: tuple, second: tuple) -> tuple:
    """`first`, then what `second` adds to it, each once and in order."""
    return first + tuple(item for item in second if item not in first)


def outcome_from(action: dict[str, Any] | None) -> Outcome | None:
    """An outcome action (`approve`, `decline`) as an Outcome."""
    if not action:
        return None
    parameters = action.get("parameters") or {}
    if action["type"] == "approve":
        return Outcome(parameters=parameters) if parameters else APPROVED
    if action["type"] == "decline":
        return Outcome.decline(action["error_code"], action.get("error_message"), **parameters)
    return None


def plan_from_action(action: dict[str, Any], label: str) -> Plan:
    """The plan one rule action contributes."""
    kind = action["type"]
    parameters = dict(action.get("parameters") or {})
    outcome = outcome_from(action) or outcome_from(action.get("outcome"))
    if kind in ("approve", "decline"):
        return Plan(outcome=outcome, fired=(label,))
    if kind == "delay":
        return Plan(delay=float(action["seconds"]), outcome=outcome, parameters=parameters,
                    fired=(label,))
    fault = Fault(kind=kind, charge=bool(action.get("charge", kind != "http_error"
                                                    and kind != "hang")),
                  seconds=float(action.get("seconds", 65.0)), status=action.get("status"),
                  body=action.get("body"), variant=action.get("variant"))
    return Plan(fault=fault, outcome=outcome, parameters=parameters, fired=(label,))
