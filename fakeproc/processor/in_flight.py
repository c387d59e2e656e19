"""Wake-ups for retries that wait on an attempt still being processed in this process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Waiters:
    """Per-transaction events; a retry in another process falls back to polling the database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[int, tuple[threading.Event, int]] = {}

    @contextmanager
    def watch(self, key: int) -> Iterator[threading.Event]:
        """An event set when `key` settles here; take it *before* reading the state, then wait."""
        with self._lock:
            event, users = self._events.get(key, (threading.Event(), 0))
            self._events[key] = (event, users + 1)
        try:
            yield event
        finally:
            with self._lock:
                current = self._events.get(key)
                if current and current[0] is event:
                    if current[1] <= 1:
                        del self._events[key]
                    else:
                        self._events[key] = (event, current[1] - 1)

    def notify(self, key: int) -> None:
        with self._lock:
            current = self._events.pop(key, None)
        if current:
            current[0].set()
