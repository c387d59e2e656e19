"""Keyset pagination with opaque cursors: deep pages cost as little as the first."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from ..errors import BadRequest
from .models import db

MAX_LIMIT = 500
# A cursor names the last row of the page before; clients pass it back, never build one. Ids
# are 32-bit INTEGER columns: a larger one would be a database error on PostgreSQL, not a 400.
CURSOR = re.compile(r"c[0-7]?[0-9a-f]{1,7}")


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"data": self.items, "next_cursor": self.next_cursor}


def keyset_page(query: Select, key: InstrumentedAttribute, limit: int,
                cursor: str | None) -> tuple[list[Any], str | None]:
    """One page of `query`, newest (highest `key`) first, and the cursor of the next page."""
    return keyset_page_of_any([query], key, limit, cursor)


def keyset_page_of_any(queries: list[Select], key: InstrumentedAttribute, limit: int,
                       cursor: str | None) -> tuple[list[Any], str | None]:
    """One page of the rows that any of `queries` finds, newest first. Each query walks its own
    index for its first `limit + 1` rows and the pages merge: the union's page is among them,
    where one OR of the conditions could read the whole table."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be from 1 to {MAX_LIMIT}")
    found: dict[Any, Any] = {}
    for query in queries:
        if cursor:
            query = query.where(key < _decode(cursor))
        for row in db.session.execute(query.order_by(key.desc()).limit(limit + 1)).scalars():
            found[getattr(row, key.key)] = row
    rows = [found[k] for k in sorted(found, reverse=True)]
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], _encode(getattr(rows[limit - 1], key.key))


def _encode(pk: int) -> str:
    return f"c{pk:x}"


def _decode(cursor: str) -> int:
    if CURSOR.fullmatch(cursor):
        return int(cursor[1:], 16)
    raise BadRequest("cursor is not one this API gave out")
