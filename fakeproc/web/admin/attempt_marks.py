"""What each attempt on a transaction's timeline was, as a mark (a word, a glyph and a colour)
and a sentence: answered, late, broken, HTTP error, hung, dropped, in flight or interrupted.
Read from the attempt as the ledger reports it; the words never claim an answer that was not
given."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SCALE_BUDGETS = 1.5  # the bar's full width, in Twilio budgets: the budget line sits at 2/3


@dataclass(frozen=True)
class Mark:
    key: str  # the CSS class suffix: mark-<key>
    glyph: str  # the mark's shape, for readers who cannot tell its colour
    word: str
    meaning: str
    sentence: str  # what the attempt says of itself, formatted with the fields of `_words`


MARKS = {mark.key: mark for mark in (
    Mark("answered", "✓", "answered", "a proper answer within Twilio's budget",
         "answered in {took}"),
    Mark("late", "◷", "late", "a proper answer after Twilio had given up on it",
         "answered in {took}, after Twilio's {budget:g} s: Twilio had given up on it"),
    Mark("broken", "≠", "broken", "an answer Twilio cannot read: not JSON, cut short, no id key…",
         "HTTP {status}, {variant}, after {took}"),
    Mark("http_error", "▲", "HTTP error", "a status outside 2xx",
         "HTTP {status}{cut}, after {took}"),
    Mark("hung", "◼", "hung", "held open, then closed without an answer",
         "held {took}, closed without an answer"),
    Mark("dropped", "✕", "dropped", "the connection closed at once without an answer",
         "connection dropped after {took}, without an answer"),
    Mark("in_flight", "…", "in flight", "still being handled: the bar grows until it ends",
         "in flight for {took}{past}"),
    Mark("interrupted", "○", "interrupted", "its server stopped before it could answer",
         "never answered: its server stopped"),
)}
LEGEND = list(MARKS.values())


def timeline(attempts: list[dict[str, Any]], budget: float, now: datetime,
             method: str) -> list[dict[str, Any]]:
    """Each attempt with its mark, its sentence, and its bar: the time it took (or has taken
    so far) as a percentage of a scale `SCALE_BUDGETS` budgets wide."""
    return [_row(attempt, budget, now, method) for attempt in attempts]


def _row(attempt: dict[str, Any], budget: float, now: datetime, method: str) -> dict[str, Any]:
    received = _parse(attempt["received_at"])
    ended = _parse(attempt["responded_at"]) if attempt["responded_at"] else None
    mark = MARKS[mark_of(attempt)]
    seconds = ((ended or now) - received).total_seconds()
    if mark.key == "interrupted":
        seconds = None
    return {**attempt, "mark": mark, "seconds": seconds,
            "words": _words(mark.key, attempt, seconds, budget, method),
            "bar": _bar(seconds, budget), "over": seconds is not None and seconds > budget,
            "late_too": bool(attempt["late"]) and mark.key not in ("late", "hung")}


def mark_of(attempt: dict[str, Any]) -> str:
    """The key of the attempt's mark in `MARKS`."""
    delivery = attempt["delivery"]
    if delivery in ("hung", "dropped", "interrupted"):
        return delivery
    if delivery is None:
        return "in_flight"
    status = attempt["status_code"] or 0
    if not 200 <= status < 300:
        return "http_error"
    if not attempt["intact"]:
        return "broken"
    return "late" if attempt["late"] else "answered"


def _words(key: str, attempt: dict[str, Any], seconds: float | None, budget: float,
           method: str) -> str:
    body = attempt["response_body"] or ""
    over = seconds is not None and seconds > budget
    return MARKS[key].sentence.format(
        took=f"{seconds:.3f} s" if seconds is not None else "", budget=budget,
        status=attempt["status_code"],
        variant=broken_variant(body, method) if key == "broken" else "",
        cut=", truncated" if body.startswith("HTTP/") else "",
        past=f": past Twilio's {budget:g} s, Twilio has given up on it" if over else "")


def broken_variant(body: str | None, method: str) -> str:
    """What is wrong with a 2xx answer that does not carry its outcome, read from the body as
    it was sent (a truncated answer is recorded with its status line and headers)."""
    text = body or ""
    key = "token_id" if method == "tokenize" else "charge_id"
    if text.startswith("HTTP/"):
        return "truncated: the body stops short of its Content-Length"
    if not text.strip():
        return "empty body"
    if text.lstrip().startswith("<"):
        return "HTML page"
    try:
        value = json.loads(text)
    except ValueError:
        return "body is not JSON"
    if not isinstance(value, dict):
        return "body is not a JSON object"
    other = "charge_id" if key == "token_id" else "token_id"
    if key not in value:
        return f"wrong id key ({other} for {key})" if other in value else f"no {key} key"
    if value[key] is None and not value.get("error_code"):
        return f"{key} null and no error_code"
    return "not a usable answer"


def _bar(seconds: float | None, budget: float) -> float:
    if seconds is None or not budget:
        return 0.0
    return round(min(seconds / (budget * SCALE_BUDGETS), 1.0) * 100, 1)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
