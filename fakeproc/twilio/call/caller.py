"""The scripted caller: one answer for each input point of the call, in order (a `<Gather>`,
one entry of a `<Pay>` step, a re-prompt, a confirmation). Once the script is used up, every
input point gets silence."""

from __future__ import annotations

import re
from dataclasses import dataclass

SILENCE, HANGUP, STAR = "silence", "hangup", "*"
_KEYS = re.compile(r"[0-9]*[#*]?")


@dataclass(frozen=True)
class Press:
    """What the caller does at one input point: keys (digits, then maybe `#` or `*`), `*`,
    silence until the timeout, or hanging up."""

    keys: str | None = None  # None: silence or a hang-up
    hangup: bool = False

    @property
    def silent(self) -> bool:
        return self.keys is None and not self.hangup

    @property
    def star(self) -> bool:
        """The caller pressed `*` (alone, or to end what it keyed): `<Pay>` stops there."""
        return (self.keys or "").endswith(STAR)

    @property
    def digits(self) -> str:
        """The keys without a closing `#` or `*`."""
        return (self.keys or "").rstrip("#*")


def parse_press(text: str) -> Press:
    """One `--press` value; ValueError names what is wrong with it."""
    value = text.strip()
    if value.lower() == SILENCE:
        return Press()
    if value.lower() == HANGUP:
        return Press(hangup=True)
    if not value or not _KEYS.fullmatch(value):
        raise ValueError(f"{text!r} is not a press: digits (a trailing # or * allowed), *, "
                         "silence or hangup")
    return Press(keys=value)


class Caller:
    """Hands out the scripted presses one input point at a time."""

    def __init__(self, presses: list[str | Press]):
        self._presses = [p if isinstance(p, Press) else parse_press(p) for p in presses]
        self.used = 0

    def answer(self, step: str | None = None) -> Press:
        """The next press (`step` names the input point: a `<Pay>` step, or `gather`)."""
        if self.used >= len(self._presses):
            return Press()
        press = self._presses[self.used]
        self.used += 1
        return press


class Repeating(Caller):
    """A caller who knows one entry per `<Pay>` step and keys it again whenever that step is
    asked again (the caller `fakeproc pay` plays)."""

    def __init__(self, entries: dict[str, str]):
        super().__init__([])
        self.entries = entries

    def answer(self, step: str | None = None) -> Press:
        entry = self.entries.get(step or "")
        return parse_press(entry) if entry else Press()
