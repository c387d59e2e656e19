"""A finished call as a test reads it, with assertions whose failure shows the transcript."""

from __future__ import annotations

from typing import Any

from .report import lines, to_dict
from .session import Session


class CallResult:
    """What `twilio_call` returns: the call's output (`to_dict`), as attributes."""

    def __init__(self, session: Session):
        self.session = session
        self.data = to_dict(session)

    call_sid = property(lambda self: self.data["call_sid"])
    status = property(lambda self: self.data["status"])
    error = property(lambda self: self.data["error"])
    warnings = property(lambda self: self.data["warnings"])
    said = property(lambda self: self.data["said"])
    events = property(lambda self: self.data["events"])
    requests = property(lambda self: self.data["requests"])
    pays = property(lambda self: self.data["pays"])

    @property
    def result(self) -> str | None:
        """The Result of the first `<Pay>` (None when the call reached none)."""
        return self.pays[0]["result"] if self.pays else None

    @property
    def action_params(self) -> dict[str, str]:
        """What the first `<Pay>` posted to its action URL."""
        return self.pays[0]["action_params"] if self.pays else {}

    @property
    def status_callbacks(self) -> list[dict[str, str]]:
        """Every statusCallback of the first `<Pay>`, as posted."""
        return self.pays[0]["status_callbacks"] if self.pays else []

    @property
    def transcript(self) -> str:
        return "\n".join(lines(self.session))

    def to_dict(self) -> dict[str, Any]:
        return self.data

    # -- assertions: a failure shows the whole call ------------------------------------------

    def assert_completed(self) -> None:
        """The call ran to its end and every answer of the app was 2xx TwiML."""
        __tracebackhide__ = True
        if self.status != "completed" or self.warnings:
            why = self.error or "; ".join(self.warnings)
            raise AssertionError(f"the call did not complete cleanly: {why}\n{self.transcript}")

    def assert_result(self, result: str) -> None:
        """Every `<Pay>` of the call ended with `result`."""
        __tracebackhide__ = True
        got = [pay["result"] for pay in self.pays]
        if not got or any(item != result for item in got):
            raise AssertionError(f"expected every <Pay> to end with {result}, got "
                                 f"{got or 'no <Pay> at all'}\n{self.transcript}")

    def assert_said(self, text: str) -> None:
        """Something the caller heard contains `text`."""
        __tracebackhide__ = True
        if not any(text in said for said in self.said):
            raise AssertionError(f"the caller never heard {text!r}\n{self.transcript}")
