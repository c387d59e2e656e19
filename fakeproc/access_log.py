"""gunicorn's logger for `fakeproc serve`, with the access log masked: a number that looks like
a card or a bank account, in the request line, the query string, the User-Agent or any other
header, is masked before the line is written (as it is before anything is stored)."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from .processor import redact_numbers


class MaskedLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        return {name: redact_numbers(value) if isinstance(value, str) else value
                for name, value in super().atoms(resp, req, environ, request_time).items()}
