"""Charge and token ids: `ch_`/`tok_` and 32 hex characters, random or reproducible."""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIXES = {"charge": "ch_", "tokenize": "tok_"}


class IdFactory:
    """Random ids, or with a seed ids derived from what they identify.

    A seeded id depends only on the seed, the connector, the transaction_id and how many ids that
    transaction has been issued, so the same traffic gets the same ids from run to run, whatever
    the order in which concurrent requests happen to land.
    """

    def __init__(self, seed: object = None):
        self._key = None if seed is None or seed == "" else str(seed).encode()

    def issue(self, method: str, connector: str, transaction_id: str, ordinal: int) -> str:
        prefix = PREFIXES[method]
        if self._key is None:
            return prefix + secrets.token_hex(16)
        message = "\x1f".join((method, connector, transaction_id, str(ordinal))).encode()
        return prefix + hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]
