"""What the caller hears at each moment of a `<Pay>`: the team's `<Prompt>` for it, or else a
default phrase (in the emulator's own words, marked as default in the output).

A `<Prompt>` names its step (`for`) and may narrow its moment by `errorType`, `cardType` and
`attempt`, each a space-separated list. The prompt that plays is the one whose given
attributes all match the moment; of several, the one that gives the most of them, then the
first in the document. `requireMatchingInputs="true"` makes the step ask for its value twice:
such a prompt is the one played for the second entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from .twiml import Node

ERROR_TYPES = ("timeout", "invalid-card-number", "invalid-card-type", "invalid-date",
               "invalid-security-code", "invalid-postal-code", "invalid-bank-routing-number",
               "invalid-bank-account-number", "input-matching-failed")

_ASK = {
    "payment-card-number": "Please enter your card number, then press pound.",
    "expiration-date": "Please enter the card's expiry date: two digits for the month, then "
                       "two for the year.",
    "security-code": "Please enter the card's security code.",
    "postal-code": "Please enter the billing postal code.",
    "bank-routing-number": "Please enter your bank's routing number.",
    "bank-account-number": "Please enter your bank account number.",
    "payment-processing": "One moment while your payment is processed.",
}
_AGAIN = "Please enter it once more, to confirm."
_SORRY = {
    "timeout": "Sorry, nothing was entered.",
    "invalid-card-number": "Sorry, that card number is not valid.",
    "invalid-card-type": "Sorry, that type of card is not accepted.",
    "invalid-date": "Sorry, that date is not valid.",
    "invalid-security-code": "Sorry, that security code is not valid.",
    "invalid-postal-code": "Sorry, that postal code is not valid.",
    "invalid-bank-routing-number": "Sorry, that routing number is not valid.",
    "invalid-bank-account-number": "Sorry, that account number is not valid.",
    "input-matching-failed": "Sorry, the two entries do not match.",
}


@dataclass(frozen=True)
class Moment:
    """Where the `<Pay>` stands when something is to be said."""

    step: str
    attempt: int = 1
    error: str | None = None  # the error type of the previous entry, on a re-prompt
    card_type: str | None = None
    confirming: bool = False  # the second entry of a requireMatchingInputs step


@dataclass(frozen=True)
class Prompt:
    node: Node

    @property
    def step(self) -> str | None:
        return self.node.get("for")

    @property
    def confirms(self) -> bool:
        return (self.node.get("requireMatchingInputs") or "").strip().lower() == "true"

    def _given(self, name: str) -> list[str]:
        return (self.node.get(name) or "").split()

    def matches(self, moment: Moment) -> bool:
        if self.step != moment.step or self.confirms != moment.confirming:
            return False
        errors, types, attempts = (self._given("errorType"), self._given("cardType"),
                                   self._given("attempt"))
        # Twilio's ErrorType for an entry that never came is input-timeout; a prompt says
        # `timeout` for it.
        error = "timeout" if moment.error == "input-timeout" else moment.error
        return ((not errors or error in errors) and (not types or moment.card_type in types)
                and (not attempts or str(moment.attempt) in attempts))

    @property
    def specificity(self) -> int:
        return sum(1 for name in ("errorType", "cardType", "attempt") if self._given(name))


def prompts_of(pay: Node) -> list[Prompt]:
    return [Prompt(child) for child in pay.children if child.name == "Prompt"]


def confirms_step(prompts: list[Prompt], step: str) -> bool:
    """Whether the step asks for its value twice (a prompt for it requires matching inputs)."""
    return any(prompt.step == step and prompt.confirms for prompt in prompts)


def choose(prompts: list[Prompt], moment: Moment) -> Prompt | None:
    """The team's prompt for the moment, or None when the default phrase plays."""
    fitting = [(index, prompt) for index, prompt in enumerate(prompts) if prompt.matches(moment)]
    if not fitting:
        return None
    return min(fitting, key=lambda pair: (-pair[1].specificity, pair[0]))[1]


def default_phrase(moment: Moment) -> str:
    """The emulator's own words for a moment no prompt covers."""
    ask = _AGAIN if moment.confirming else _ASK[moment.step]
    if moment.step == "security-code" and moment.card_type == "amex":
        ask = "Please enter the four-digit security code on the front of the card."
    sorry = _SORRY.get("timeout" if moment.error == "input-timeout" else moment.error or "")
    return f"{sorry} {ask}" if sorry else ask
