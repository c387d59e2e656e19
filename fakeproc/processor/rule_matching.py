"""Rule matching: which stored rules fire on an attempt, and what they make of it.

A rule's `remaining` counts transactions (payments), whatever its kind. Once a rule has fired
on a transaction it keeps applying to that transaction's later attempts while its match holds,
without being counted or drawn again, even when used up: "the next payment hangs" hangs
Twilio's retries of that payment too. Disabling or deleting the rule stops it.

Each process keeps the enabled rules in memory, reloaded only when the store's configuration
version moves, so a request never scans the rules table; the counting is the store's
(`store.rule_rows`), so "the next 3" means 3 across every process.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cached_property
from typing import Any

from ..store import config_version, rule_rows
from .faults import NOTHING, Plan, plan_from_action
from .fingerprints import Fingerprinter
from .wire import PaymentRequest

OUTCOME_TYPES = ("approve", "decline")


@dataclass(frozen=True)
class Facts:
    """What rules can match on, for one attempt (no card data in the clear). The keyed
    fingerprints of the card and the CVV are worked out only if a rule asks for them."""

    connector: str
    request: PaymentRequest
    fingerprints: Fingerprinter
    attempt: int
    # Rules that fired on an earlier attempt of the same transaction.
    fired_before: frozenset[int] = frozenset()

    @cached_property
    def card_fingerprint(self) -> str | None:
        return self.fingerprints.of(self.request) if self.request.is_card else None

    @cached_property
    def cvv_fingerprint(self) -> str | None:
        cvv = self.request.cvv
        return self.fingerprints.digest("cvv:" + cvv) if cvv else None


@dataclass(frozen=True)
class LiveRule:
    id: int
    match: dict[str, Any]
    action: dict[str, Any]
    counted: bool  # it has a `remaining` count
    spent: bool  # that count is used up: it applies only where it already fired
    probability: float

    @property
    def is_outcome(self) -> bool:
        return self.action["type"] in OUTCOME_TYPES

    def matches(self, facts: Facts) -> bool:
        return all(_FIELD_TESTS[name](value, facts) for name, value in self.match.items())

    def plan(self, again: bool = False) -> Plan:
        """What the rule does to an attempt; `again` when it already fired on the
        transaction, so it is neither counted nor consumed a second time."""
        action_plan = plan_from_action(self.action, label(self.id))
        if again:
            return action_plan
        return replace(action_plan, rules=(self.id,),
                       counted=(self.id,) if self.counted else ())


def label(rule_id: int) -> str:
    """How an attempt records that a rule fired on it."""
    return f"rule:{rule_id}"


_LABEL = re.compile(r"rule:([0-9]+)")


def fired_in(recorded: Iterable[Iterable[str] | None]) -> frozenset[int]:
    """The rule ids among attempts' recorded firings (rules and magic values alike)."""
    return frozenset(int(found.group(1)) for labels in recorded for text in labels or ()
                     if isinstance(text, str) and (found := _LABEL.fullmatch(text)))


def _amount(facts: Facts) -> Decimal | None:
    return facts.request.amount


_FIELD_TESTS = {
    "connector": lambda v, f: f.connector == v,
    "method": lambda v, f: f.request.method == v,
    "payment_method": lambda v, f: f.request.payment_method == v,
    "card_fingerprint": lambda v, f: f.card_fingerprint == v,
    "card_last4": lambda v, f: f.request.last4 == v,
    "card_brand": lambda v, f: f.request.brand == v,
    "last4": lambda v, f: f.request.last4 == v,
    "amount": lambda v, f: _amount(f) is not None and _amount(f) == Decimal(v),
    "amount_min": lambda v, f: _amount(f) is not None and _amount(f) >= Decimal(v),
    "amount_max": lambda v, f: _amount(f) is not None and _amount(f) <= Decimal(v),
    "currency": lambda v, f: (f.request.currency or "").upper() == v.upper(),
    "postal_code": lambda v, f: f.request.postal_code == v,
    "cvv_fingerprint": lambda v, f: f.cvv_fingerprint == v,
    "description_contains": lambda v, f: v.lower() in _text(f.request.description).lower(),
    "parameters": lambda v, f: all(f.request.parameters.get(k) is not None
                                   and _text(f.request.parameters[k]) == val
                                   for k, val in v.items()),
    "transaction_id": lambda v, f: f.request.transaction_id == v,
    "attempt": lambda v, f: f.attempt == v,
}


def _text(value: Any) -> str:
    """A description as text: strings as they are, any other JSON as its JSON."""
    return value if isinstance(value, str) else "" if value is None else json.dumps(value)


class RuleBook:
    """This process's copy of the enabled rules, in evaluation order (priority, then age).

    A probability is drawn once per transaction: the draw is a hash of the rule, the
    connector, the `transaction_id` and a salt (the seed when one is set, so runs repeat;
    else `salt`, a secret of the store, so every process draws alike)."""

    def __init__(self, seed: str | None = None, salt: Callable[[], str] | None = None):
        self._lock = threading.Lock()
        self._version: str | None = None
        self._rules: tuple[LiveRule, ...] = ()
        self._seed = seed
        self._salt_source = salt
        self._salt: str | None = seed

    def live(self) -> tuple[LiveRule, ...]:
        version = config_version.current()
        if version != self._version:
            rules = tuple(LiveRule(r.id, r.match or {}, r.action, r.remaining is not None,
                                   r.remaining is not None and r.remaining <= 0, r.probability)
                          for r in rule_rows.enabled_rows())
            with self._lock:
                self._rules, self._version = rules, version
        return self._rules

    def delivery(self, facts: Facts, skip: Iterable[int] = ()) -> Plan:
        """The first firing delivery rule (delay, hang, drop, http_error, malformed)."""
        return self._first(facts, outcome_rules=False, skip=frozenset(skip))

    def outcome(self, facts: Facts, skip: Iterable[int] = ()) -> Plan:
        """The first firing outcome rule (approve, decline)."""
        return self._first(facts, outcome_rules=True, skip=frozenset(skip))

    def _first(self, facts: Facts, outcome_rules: bool, skip: frozenset[int]) -> Plan:
        for rule in self.live():
            if rule.is_outcome != outcome_rules or rule.id in skip:
                continue
            again = rule.id in facts.fired_before
            if (again or not rule.spent) and rule.matches(facts) \
                    and (again or self._draw(rule, facts)):
                return rule.plan(again)
        return NOTHING

    def _draw(self, rule: LiveRule, facts: Facts) -> bool:
        if rule.probability >= 1:
            return True
        if rule.probability <= 0:
            return False
        key = f"{self._draw_salt()}|{rule.id}|{facts.connector}|{facts.request.transaction_id}"
        return random.Random(key).random() < rule.probability

    def _draw_salt(self) -> str:
        if self._salt is None:
            self._salt = self._salt_source() if self._salt_source else str(random.random())
        return self._salt
