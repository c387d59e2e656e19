"""One inbound call to a TwiML app, played through: fetch a document, run its verbs in order,
follow `<Gather>`, `<Pay>` and `<Redirect>` to the next document, until a `<Hangup>`, a
`<Reject>`, the caller hanging up, or a document that ends. An answer the call cannot go on
with (not 2xx, not TwiML, an unknown verb) ends it as an application error, named."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .caller import Caller
from .pay import PayRun
from .session import CallOptions, Session
from .twiml import AppError, Node, parse
from .webhooks import Transport, resolve

MAX_DOCUMENTS = 100  # a call that fetches more is taken for a loop


@dataclass(frozen=True)
class Fetch:
    """The next document: where, how, with which extra parameters."""

    method: str
    url: str
    extra: dict[str, str]
    purpose: str


@dataclass(frozen=True)
class Loaded:
    """The next document, already answered (what a `<Pay>` action URL returned)."""

    url: str
    verbs: list[Node]


def place_call(transport: Transport, url: str, presses: Sequence[Any] | Caller,
               options: CallOptions | None = None) -> Session:
    """Play one call to the app at `url` with the scripted presses (or a caller of its own);
    the finished session."""
    caller = presses if isinstance(presses, Caller) else Caller(list(presses))
    session = Session(transport, caller, options or CallOptions())
    Call(session).run(Fetch(session.options.method, url, {}, "voice URL"))
    return session


class Call:
    def __init__(self, session: Session):
        self.session = session

    def run(self, first: Fetch) -> None:
        session, fetch = self.session, first
        try:
            for _ in range(MAX_DOCUMENTS):
                url, verbs = (fetch.url, fetch.verbs) if isinstance(fetch, Loaded) \
                    else (fetch.url, self._fetch(fetch))
                fetch = self._execute(verbs, url)
                if fetch is None:
                    break
            else:
                raise AppError(f"the call fetched {MAX_DOCUMENTS} documents: a loop?")
        except AppError as error:
            session.status = "failed"
            session.event("error", message=str(error))
            session.error = str(error)
            return
        session.event("end", status="completed")

    def _fetch(self, fetch: Fetch) -> list[Node]:
        answer = self.session.webhooks.send(fetch.method, fetch.url, fetch.extra, fetch.purpose)
        self.session.event("request", purpose=fetch.purpose, method=fetch.method.upper(),
                           url=fetch.url, status=answer.status)
        return twiml_of(answer, fetch.url)

    def _execute(self, verbs: list[Node], document: str) -> Fetch | Loaded | None:
        """Run a document's verbs; the next document to fetch, or None when the call ends."""
        for verb in verbs:
            if verb.name in ("Say", "Play", "Pause"):
                self.play([verb])
            elif verb.name == "Gather":
                fetch = self._gather(verb, document)
                if fetch is not False:
                    return fetch
            elif verb.name == "Pay":
                return self._pay(verb, document)
            elif verb.name == "Redirect":
                target = resolve(document, verb.text or document)
                self.session.event("redirect", url=target)
                return Fetch(verb.get("method", "POST"), target, {}, "redirect")
            elif verb.name in ("Hangup", "Reject"):
                self.session.event(verb.name.lower(), **({"reason": verb.get("reason",
                                                                            "rejected")}
                                                         if verb.name == "Reject" else {}))
                return None
        return None

    def play(self, nodes: Sequence[Node], **details: Any) -> None:
        """What the caller hears: `<Say>` text, `<Play>` audio, `<Pause>` silence."""
        for node in nodes:
            loops = int(node.get("loop", "1")) if (node.get("loop") or "1").isdigit() else 1
            for _ in range(max(loops, 1)):
                if node.name == "Say":
                    self.session.say(node.text, **details)
                elif node.name == "Play":
                    self.session.event("play", url=node.text, **details)
                elif node.name == "Pause":
                    length = node.get("length", "1")
                    seconds = int(length) if length.isdigit() else 1
                    self.session.event("pause", seconds=seconds)
                    self.session.wait(seconds)

    def _gather(self, verb: Node, document: str) -> Fetch | None | bool:
        """The caller's keys posted to the action; False: nothing entered, go on."""
        self.play([node for node in verb.children if node.name in ("Say", "Play", "Pause")])
        press = self.session.caller.answer("gather")
        if press.hangup:
            self.session.hang_up()
            self.session.event("press", step="gather", keys="hangup")
            self.session.event("hangup", during="gather")
            return None
        finish = verb.get("finishOnKey", "#")
        keys = press.keys or ""
        finished = bool(finish) and keys.endswith(finish) and keys != finish
        digits = keys[:-len(finish)] if finished else keys
        limit = verb.get("numDigits")
        if limit and limit.isdigit() and int(limit) > 0:
            digits = digits[:int(limit)]
        if press.silent:
            timeout = verb.get("timeout", "5")
            self.session.wait(int(timeout) if timeout.isdigit() else 5)
        self.session.event("press", step="gather", keys=press.keys or "silence")
        if not digits and (verb.get("actionOnEmptyResult") or "").lower() != "true":
            return False
        action = resolve(document, verb.get("action") or document)
        extra = {"Digits": digits, **({"FinishedOnKey": finish} if finished else {})}
        return Fetch(verb.get("method", "POST"), action, extra, "gather action")

    def _pay(self, verb: Node, document: str) -> Loaded | None:
        outcome = PayRun(self.session, verb, document, self.play).run()
        self.session.pays.append(outcome.record)
        answer = self.session.webhooks.send("POST", outcome.action, outcome.fields,
                                            "pay action")
        outcome.record["action_params"] = self.session.webhooks.sent[-1].params  # as posted
        self.session.event("request", purpose="pay action", method="POST",
                           url=outcome.action, status=answer.status, result=outcome.result)
        if not outcome.goes_on:  # the caller hung up: nobody hears what comes next
            if not 200 <= answer.status < 300:
                self.session.warnings.append(f"the action URL {outcome.action} answered HTTP "
                                             f"{answer.status}")
            return None
        return Loaded(outcome.action, twiml_of(answer, outcome.action))


def twiml_of(answer: Any, url: str) -> list[Node]:
    """The verbs of an answer, or the AppError that names why the call cannot go on."""
    if not 200 <= answer.status < 300:
        preview = " ".join(answer.body[:120].decode("utf-8", "replace").split())
        raise AppError(f"{url} answered HTTP {answer.status}" + (f": {preview}" if preview
                                                                  else ""))
    return parse(answer.body, url)
