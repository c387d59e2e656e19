"""A TwiML app whose answers the test writes inline: each path answers the XML (or a callable
of the form, returning XML or a (body, status) pair) given for it, and every request it gets is
kept, with its signature checked against the auth token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request

from fakeproc.twilio.action_fields import signature

AUTH_TOKEN = "fakeprocfakeprocfakeprocfakeproc"  # the emulator's documented default

Answer = str | tuple[str, int] | Callable[[dict[str, str]], Any]


class Scripted(Flask):
    def __init__(self, routes: dict[str, Answer], auth_token: str = AUTH_TOKEN):
        super().__init__("scripted")
        self.routes, self.auth_token = routes, auth_token
        self.received: list[dict[str, Any]] = []
        self.add_url_rule("/<path:path>", "any", self._answer, methods=["GET", "POST"])
        self.add_url_rule("/", "root", self._answer, methods=["GET", "POST"],
                          defaults={"path": ""})

    def _answer(self, path: str) -> Response:
        form = dict(request.form) if request.method == "POST" else {}
        url = request.url
        expected = signature(self.auth_token, url, form)
        self.received.append({"path": "/" + path, "method": request.method, "form": form,
                              "args": dict(request.args), "url": url,
                              "signed": request.headers.get("X-Twilio-Signature") == expected})
        answer = self.routes.get("/" + path)
        if answer is None:
            return Response("no such page", status=404)
        if callable(answer):
            answer = answer(form or dict(request.args))
        body, status = answer if isinstance(answer, tuple) else (answer, 200)
        return Response(body, status=status, content_type="text/xml")

    def posted(self, path: str) -> list[dict[str, str]]:
        """The forms posted to `path`, in order."""
        return [item["form"] for item in self.received if item["path"] == path]
