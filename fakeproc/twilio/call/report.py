"""A finished call as people and programs read it: one line per event with its time, or one
JSON object (`--json`), the same for `fakeproc call` and the `twilio_call` fixture."""

from __future__ import annotations

from typing import Any

from .session import Session


def to_dict(session: Session) -> dict[str, Any]:
    return {"call_sid": session.call_sid,
            "status": "failed" if session.error else "completed",
            "error": session.error, "warnings": list(session.warnings),
            "said": list(session.said), "events": list(session.events),
            "requests": [sent.to_dict() for sent in session.webhooks.sent],
            "pays": list(session.pays)}


def lines(session: Session) -> list[str]:
    out = [f"call {session.call_sid} from {session.options.caller_id} to "
           f"{session.options.called} (time scale {session.options.time_scale:g})"]
    out += [f"{event['t']:8.3f} s  {_describe(event)}" for event in session.events]
    for warning in session.warnings:
        out.append(f"warning: {warning}")
    return out


def _describe(event: dict[str, Any]) -> str:
    kind = event["kind"]
    if kind == "request":
        result = f"  Result={event['result']}" if event.get("result") else ""
        return (f"{event['method']} {event['url']} ({event['purpose']}): "
                f"HTTP {event['status']}{result}")
    if kind == "say":
        where = f"[{event['prompt']}{', default' if event.get('default') else ''}] " \
            if event.get("prompt") else ""
        return f"say {where}{event['text']!r}"
    if kind == "prompt":
        confirming = ", confirmation" if event.get("confirming") else ""
        return f"prompt for {event['step']} (attempt {event['attempt']}, the app's " \
               f"own{confirming})"
    if kind == "press":
        return f"caller presses {event['keys']} at {event['step']}"
    if kind == "status_callback":
        error = f" ErrorType={event['error']}" if event.get("error") else ""
        return f"statusCallback For={event['step']} Attempt={event['attempt']}{error}: " \
               f"HTTP {event['status']}"
    if kind == "processor":
        status = f"HTTP {event['status']}" if event.get("status") else event["outcome"]
        return f"processor attempt {event['number']}: {status} after {event['elapsed']:.3f} s"
    if kind == "pay":
        return (f"<Pay> {event['method']} by {event['payment_method']} through connector "
                f"{event['connector']}: {', '.join(event['steps'])}")
    if kind == "pay_result":
        error = f" ({event['error']})" if event.get("error") else ""
        return f"<Pay> Result={event['result']}{error}"
    if kind == "note":
        return f"note: {event['text']}"
    if kind == "error":
        return f"application error: {event['message']}"
    details = ", ".join(f"{key}={value}" for key, value in event.items()
                        if key not in ("t", "kind"))
    return f"{kind}{': ' + details if details else ''}"
