"""Keyed fingerprints (for idempotency, never for lookup of card data) and credential checks."""

from __future__ import annotations

import hashlib
import hmac

from ..store.connector_rows import ConnectorSettings
from .wire import PaymentRequest


class Fingerprinter:
    """HMAC-SHA256 under the store's own key: equal numbers give equal fingerprints."""

    def __init__(self, key: bytes):
        self._key = key

    def of(self, request: PaymentRequest) -> str:
        return self.digest(f"{request.payment_method}:{request.number}")

    def digest(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()


def same(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of two secrets; None never matches."""
    if given is None or expected is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def authenticate(connector: ConnectorSettings, username: str | None, password: str | None,
                 fingerprints: Fingerprinter) -> bool:
    """A connector with a password wants that username and password; one without takes all."""
    if connector.password_digest is None:
        return True
    if username is None or password is None:
        return False
    user_ok = same(username, connector.username or "")
    password_ok = same(fingerprints.digest("password:" + password), connector.password_digest)
    return user_ok and password_ok
