"""The per-app services every surface shares: clock, id factory, waiters, the cached
connectors and rules, the fingerprints, the processor. Built by `create_app`; the web reaches
it through `fakeproc.web.runtime.runtime()`."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ..store.connector_rows import Directory
from ..store.secrets import fingerprint_key
from .clock import Clock
from .engine import Processor
from .fingerprints import Fingerprinter
from .ids import IdFactory
from .in_flight import Waiters
from .rule_matching import RuleBook


class Runtime:
    """Built with the app; what needs the database (the store key) is loaded on first use."""

    def __init__(self, config: Mapping[str, Any]):
        self.clock = Clock(float(config["TIME_SCALE"]))
        self.ids = IdFactory(config.get("SEED"))
        self.waiters = Waiters()
        self.directory = Directory()
        self.rulebook = RuleBook(str(config["SEED"]) if config.get("SEED") is not None else None,
                                 salt=lambda: self.fingerprints.digest("rule-draws"))
        self.admin_token: str | None = config.get("ADMIN_TOKEN") or None
        self._poll_max = float(config["INFLIGHT_POLL_MAX"])
        self._lock = threading.Lock()
        self._fingerprints: Fingerprinter | None = None
        self._processor: Processor | None = None

    @property
    def fingerprints(self) -> Fingerprinter:
        if self._fingerprints is None:
            with self._lock:
                if self._fingerprints is None:
                    self._fingerprints = Fingerprinter(fingerprint_key())
        return self._fingerprints

    @property
    def processor(self) -> Processor:
        if self._processor is None:
            self._processor = Processor(self.clock, self.ids, self.fingerprints, self.waiters,
                                        self.rulebook, self._poll_max)
        return self._processor
