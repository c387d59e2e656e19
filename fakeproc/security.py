"""Keyed fingerprints (for idempotency, never for lookup of card data) and credential checks."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .store.models import Setting, db
from .wire import PaymentRequest

KEY_SETTING = "fingerprint_key"
SESSION_KEY_SETTING = "session_key"


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


def store_key() -> bytes:
    """The store's fingerprint key, made once per database so every process shares it."""
    return bytes.fromhex(_stored_secret(KEY_SETTING))


def session_key() -> str:
    """The key that signs admin sessions and CSRF tokens, shared by every process of a store,
    so a login made on one worker holds on the others."""
    return _stored_secret(SESSION_KEY_SETTING)


def _stored_secret(name: str) -> str:
    key = db.session.execute(select(Setting.value).where(Setting.key == name)).scalar()
    if key is None:
        try:
            db.session.add(Setting(key=name, value=secrets.token_hex(32)))
            db.session.commit()
        except IntegrityError:  # another process made it first
            db.session.rollback()
        key = db.session.execute(select(Setting.value).where(Setting.key == name)).scalar()
    db.session.commit()
    return key
