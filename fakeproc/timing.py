"""Wall-clock time and the time scale that shrinks every delay, hang and timeout in tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class Clock:
    """`scale` multiplies every configured duration: 0.01 turns a 12 s delay into 120 ms."""

    scale: float = 1.0

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def scaled(self, seconds: float) -> float:
        return seconds * self.scale

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of configured time (cooperatively under gevent)."""
        if seconds > 0:
            time.sleep(self.scaled(seconds))
