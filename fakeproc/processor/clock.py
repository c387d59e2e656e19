"""Wall-clock time and the time scale that shrinks every delay, hang and timeout in tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


@dataclass(frozen=True)
class Clock:
    """`scale` multiplies every configured duration: 0.01 turns a 12 s delay into 120 ms."""

    scale: float = 1.0

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def scaled(self, seconds: float) -> float:
        return seconds * self.scale

    def after(self, moment: datetime, seconds: float) -> datetime:
        """The moment `seconds` of configured time after `moment`."""
        return moment + timedelta(seconds=self.scaled(seconds))

    def sleep_until(self, moment: datetime) -> None:
        """Sleep until `moment` (cooperatively under gevent); at once if it has passed."""
        seconds = (moment - self.now()).total_seconds()
        if seconds > 0:
            time.sleep(seconds)
