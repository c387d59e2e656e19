"""Keyed fingerprints (for idempotency, never for lookup of card data) and credential checks."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .models import Setting, db
from .wire import PaymentRequest

KEY_SETTING = "fingerprint_key"


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
    key = db.session.execute(select(Setting.value).where(Setting.key == KEY_SETTING)).scalar()
    if key is None:
        try:
            db.session.add(Setting(key=KEY_SETTING, value=secrets.token_hex(32)))
            db.session.commit()
        except IntegrityError:  # another process made it first
            db.session.rollback()
        key = db.session.execute(select(Setting.value).where(Setting.key == KEY_SETTING)).scalar()
    db.session.commit()
    return bytes.fromhex(key)
