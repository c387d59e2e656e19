"""The clock of the server Twilio's side talks to: a fakeproc says its time scale on
`/api/health`, so that Twilio's timeout means on both sides what it means to the server."""

from __future__ import annotations

import http.client
import json
import math
import ssl
from typing import Any
from urllib.parse import urlsplit

USER_AGENT = "fakeproc-connector"


def served_time_scale(url: str, timeout: float = 2.0,
                      ssl_context: ssl.SSLContext | None = None) -> float | None:
    """The time scale of the fakeproc serving `url` (from its `/api/health`), or None when
    what answers there is not a fakeproc, or nothing answers within `timeout` real seconds."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    options: dict[str, Any] = {"context": ssl_context} if parts.scheme == "https" else {}
    connection = kind(parts.hostname, parts.port, timeout=timeout, **options)
    try:
        connection.request("GET", "/api/health", headers={"Accept": "application/json",
                                                          "User-Agent": USER_AGENT})
        response = connection.getresponse()
        health = _parse(response.read(64 * 1024)) if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()
    scale = health.get("time_scale") if isinstance(health, dict) else None
    if health and health.get("status") == "ok" and isinstance(scale, (int, float)) \
            and not isinstance(scale, bool) and scale > 0:
        return float(scale)
    return None


def real_seconds(configured: float, scale: float) -> str:
    """`configured` seconds of Twilio's time as they really last, the scale named when it is
    not 1: "0.1 s (Twilio's 10 s at time scale 0.01)"."""
    real = configured * scale
    if math.isclose(scale, 1.0):
        return f"{real:g} s"
    return f"{real:g} s (Twilio's {configured:g} s at time scale {scale:g})"


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # UnicodeDecodeError is one too
        return None
