"""`fakeproc call`: Twilio's side of a whole inbound call to a team's TwiML app, with a scripted
caller. The app's documents are fetched and played (`runner`, `twiml`), each request signed
as Twilio signs it (`webhooks`), a `<Pay>` asked step by step with its prompts and
statusCallbacks (`pay`, `pay_rules`, `prompts`) and sent to the processor through the Generic
Pay Connector client; the call's events come out as text or JSON (`report`)."""

from .caller import Caller, Press, parse_press
from .report import lines, to_dict
from .result import CallResult
from .runner import place_call
from .session import DEFAULT_AUTH_TOKEN, CallOptions, Session
from .webhooks import HttpApp, WsgiApp

__all__ = ["DEFAULT_AUTH_TOKEN", "CallOptions", "CallResult", "Caller", "HttpApp", "Press",
           "Session",
           "WsgiApp", "lines", "parse_press", "place_call", "to_dict"]
