"""Secrets a store makes for itself on first use and every process of it shares: the key of
the card fingerprints and the key that signs admin sessions."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .models import Setting, db

KEY_SETTING = "fingerprint_key"
SESSION_KEY_SETTING = "session_key"


def fingerprint_key() -> bytes:
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
