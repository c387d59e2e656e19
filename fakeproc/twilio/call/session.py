"""What a call carries from verb to verb: its ids, the caller, the requests to the app, the
clock, and the events the output is made of."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from .caller import Caller
from .webhooks import Transport, Webhooks

DEFAULT_AUTH_TOKEN = "fakeprocfakeprocfakeprocfakeproc"  # signs requests unless given one
DEFAULT_FROM, DEFAULT_TO = "+15005550006", "+15005550001"


@dataclass(frozen=True)
class CallOptions:
    """How the call is placed: who calls whom, the app's auth token, where the Pay
    Connectors send, and on what clock."""

    method: str = "POST"
    caller_id: str = DEFAULT_FROM
    called: str = DEFAULT_TO
    auth_token: str = DEFAULT_AUTH_TOKEN
    processor: str = "http://127.0.0.1:8000"
    connectors: dict[str, str] = field(default_factory=dict)  # unique name -> URL
    live: bool = False  # lift TEST mode's allow-list of test cards and accounts
    time_scale: float = 1.0
    strict: bool = False  # an http action URL is a validation error even on this machine
    # The Generic Pay Connector's: 10 s for each attempt (configured), then 5 retries.
    connector_timeout: float = 10.0
    connector_retries: int = 5
    transaction_id: str | None = None  # the first <Pay>'s, instead of a fresh PK… id


class Session:
    """One call in progress."""

    def __init__(self, transport: Transport, caller: Caller, options: CallOptions):
        self.options, self.caller = options, caller
        self.call_sid = "CA" + secrets.token_hex(16)
        self.account_sid = "AC" + secrets.token_hex(16)
        self.status = "in-progress"
        self.webhooks = Webhooks(transport, options.auth_token, self.standard())
        self.events: list[dict[str, Any]] = []
        self.said: list[str] = []
        self.pays: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.error: str | None = None  # why the call failed (an application error)
        self.payments: list[Any] = []  # each <Pay>'s exchange with the processor, if any
        self.outcomes: list[dict[str, str]] = []  # each <Pay>'s fields for its action URL
        self._started = time.monotonic()

    def standard(self) -> dict[str, str]:
        """The parameters Twilio sends with every request of the call."""
        return {"CallSid": self.call_sid, "AccountSid": self.account_sid,
                "From": self.options.caller_id, "To": self.options.called,
                "Caller": self.options.caller_id, "Called": self.options.called,
                "CallStatus": self.status, "Direction": "inbound", "ApiVersion": "2010-04-01"}

    def hang_up(self) -> None:
        """The caller hung up: every later request says so."""
        self.status = "completed"
        self.webhooks.standard = self.standard()

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def event(self, kind: str, **details: Any) -> dict[str, Any]:
        record = {"t": round(self.elapsed(), 3), "kind": kind, **details}
        self.events.append(record)
        return record

    def say(self, text: str, **details: Any) -> None:
        self.said.append(text)
        self.event("say", text=text, **details)

    def wait(self, seconds: float) -> None:
        """Let `seconds` of the call's time pass (scaled like every other wait)."""
        time.sleep(max(seconds, 0.0) * self.options.time_scale)
