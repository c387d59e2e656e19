"""The demo's stories: what realistic <Pay> traffic is made of (approvals, declines by every
trigger, late answers and retries, orphans, failures), in what shares, as Faker-made journeys
one seed makes the same."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..processor.magic_values import DECLINE_AMOUNTS
from ..testing.payloads import Payloads

SLOW_RULE_SECONDS = 75.0  # longer than Twilio's six tries: every attempt answered late

_CODES = ("card_declined", "insufficient_funds", "do_not_honor", "call_issuer")
# story: (share of the mix, holds connections for many seconds, variants). A variant is what the
# request differs by; '#' in an amount is a random digit.
STORIES: dict[str, tuple[int, bool, tuple[dict[str, Any], ...]]] = {
    "approved": (44, False, ({},)),
    "approved_ach": (8, False, ({"ach": True},)),
    "tokenize": (8, False, ({"method": "tokenize"},)),
    "tokenize_ach": (2, False, ({"method": "tokenize", "ach": True},)),
    # The answer was lost on its way back: Twilio sends the same request again.
    "replayed": (7, False, ({"replays": 1}, {"replays": 1}, {"replays": 2})),
    "declined_amount": (8, False, tuple({"amount": f"{code}.##"}
                                        for code in (*DECLINE_AMOUNTS, 3000))),
    "declined_field": (4, False, ({"cvv": "000"}, {"postal_code": "00000"})),
    "declined_check": (5, False, ({"expired": True}, {"live_card": True},
                                  {"ach": True, "bad_routing": True},
                                  {"ach": True, "live_account": True})),
    "declined_scenario": (3, False, tuple({"scenario": f"decline:{c}"} for c in _CODES)),
    # Answered after Twilio's timeout: the retry waits for the answer and gets it.
    "late_then_retried": (4, True, ({"amount": "4012.##"}, {"amount": "4014.##"},
                                    {"scenario": "delay:11"}, {"scenario": "delay:13"})),
    "late_decline": (2, True, tuple({"scenario": f"delay:12;decline:{c}"} for c in _CODES)),
    # Orphans: charged, yet Twilio never reads the charge id.
    "orphan_hang": (1, True, ({"amount": "4101.00"}, {"scenario": "hang_charge"})),
    "orphan_drop": (1, False, ({"amount": "4301.00"}, {"scenario": "drop"})),
    "orphan_broken": (1, False, tuple({"scenario": f"malformed:{variant}"}
                                      for variant in ("not_json", "html", "missing_id"))),
    # Nothing charged, nothing decided.
    "failed_http": (1, False, ({"amount": "4503.00"}, {"amount": "4429.00"},
                               {"scenario": "http:502"})),
    "failed_hang": (1, True, ({"amount": "4100.00"}, {"scenario": "hang"})),
}


@dataclass
class Journey:
    """One transaction as Twilio lives it: a body, sent until answered, maybe replayed."""

    story: str
    body: dict[str, Any]
    replays: int = 0
    rule: dict[str, Any] | None = None
    sent: int = 0

    @property
    def holds(self) -> bool:
        return self.rule is not None or STORIES[self.story][1]


class Shop(Payloads):
    """Faker-made customers, orders and payment details; one seed, the same traffic.
    Transaction ids are new each run, so a second run adds traffic instead of replaying."""

    def __init__(self, seed: int | None = None):
        super().__init__(seed, fresh_ids=True)

    def journeys(self, count: int, holds: bool) -> list[Journey]:
        """`count` journeys: every story once (as far as `count` allows), the rest by share;
        `holds=False` leaves out the stories that hold a connection."""
        stories = [name for name, (_, held, _) in STORIES.items() if holds or not held]
        self.rng.shuffle(stories)
        picked = ["rule", *stories[:count - 1]]
        picked += self.rng.choices(stories, [STORIES[s][0] for s in stories],
                                   k=max(count - len(picked), 0))
        self.rng.shuffle(picked)
        return [self.journey(story, holds) for story in picked]

    def journey(self, story: str, holds: bool = True) -> Journey:
        """One journey of `story`; "rule" is a charge that a control API rule slows down."""
        if story == "rule":
            body = self.body()
            return Journey(story, body, rule=_slow_rule(body["transaction_id"], holds))
        variant = dict(self.rng.choice(STORIES[story][2]))
        replays = variant.pop("replays", 0)
        if "amount" in variant:
            variant["amount"] = self.fake.numerify(variant["amount"])
        return Journey(story, self.body(**variant), replays)

def _slow_rule(transaction_id: str, holds: bool) -> dict[str, Any]:
    """A rule for one transaction: a 75 s first attempt (Twilio gives up after five retries),
    or, when long holds are left out, every connection dropped after the charge."""
    match = {"transaction_id": transaction_id}
    if holds:
        return {"match": {**match, "attempt": 1}, "remaining": 1,
                "action": {"type": "delay", "seconds": SLOW_RULE_SECONDS}}
    return {"match": match, "action": {"type": "drop", "charge": True}, "remaining": 1}
