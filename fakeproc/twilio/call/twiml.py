"""TwiML as the emulator reads it: a `<Response>` of verbs, each with its attributes, text and
nested nouns. Anything else is an application error that names what is wrong."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

# The verbs the emulator plays; any other is an application error, never skipped.
VERBS = frozenset({"Say", "Play", "Pause", "Gather", "Pay", "Redirect", "Hangup", "Reject"})


class AppError(Exception):
    """The app answered something a call cannot go on with; the message says what."""


@dataclass(frozen=True)
class Node:
    """One element: its name, attributes, text (stripped) and children, in document order."""

    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    text: str = ""
    children: tuple[Node, ...] = ()

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attrs.get(name, default)


def parse(body: bytes, url: str) -> list[Node]:
    """The verbs of a TwiML document fetched from `url`."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as error:
        preview = " ".join(body[:80].decode("utf-8", "replace").split())
        raise AppError(f"{url} answered a body that is not TwiML ({error}): {preview!r}") \
            from None
    if _local(root.tag) != "Response":
        raise AppError(f"{url} answered XML whose root is <{_local(root.tag)}>, not <Response>")
    verbs = [_node(child) for child in root]
    unknown = [verb.name for verb in verbs if verb.name not in VERBS]
    if unknown:
        raise AppError(f"{url} answered a verb the emulator does not play: <{unknown[0]}>")
    return verbs


def _node(element: ElementTree.Element) -> Node:
    return Node(_local(element.tag), dict(element.attrib), (element.text or "").strip(),
                tuple(_node(child) for child in element))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
