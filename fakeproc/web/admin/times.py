"""How the panel writes a moment: in UTC and saying so, inside a <time> element that carries
the instant, so that static/admin.js can show it in the browser's own zone on request. Without
JavaScript the UTC text stands."""

from __future__ import annotations

from datetime import datetime, timezone

from markupsafe import Markup

from . import bp

NOTHING = "—"
_TIME = Markup('<time datetime="{}" data-format="{}">{}</time>')


@bp.app_template_filter("moment")
def moment_filter(text: str | None) -> Markup | str:
    """An API timestamp as a date and a time to the millisecond, in UTC."""
    return _time(text, "moment")


@bp.app_template_filter("clock")
def clock_filter(text: str | None) -> Markup | str:
    """An API timestamp as the time of day alone, to the millisecond, in UTC."""
    return _time(text, "clock")


def _time(text: str | None, style: str) -> Markup | str:
    if not text:
        return NOTHING
    instant = _parse(text)
    millis = f"{instant.microsecond // 1000:03d}"
    stamp = instant.strftime("%Y-%m-%dT%H:%M:%S.") + millis + "Z"
    shown = instant.strftime("%H:%M:%S.") + millis + " UTC"
    if style == "moment":
        shown = instant.strftime("%Y-%m-%d ") + shown
    return _TIME.format(stamp, style, shown)  # format() escapes what it is given


def _parse(text: str) -> datetime:
    """The API writes UTC with a Z; an older row may have no zone at all, and is UTC too."""
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        return instant.replace(tzinfo=timezone.utc)
    return instant.astimezone(timezone.utc)
