"""Validated shapes of control API bodies (pydantic), also the source of their OpenAPI schemas."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["ConnectorCreate", "ConnectorUpdate", "ResetRequest", "ValidationError", "describe"]

UniqueName = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ConnectorUpdate(_Strict):
    """Fields a PATCH may change; the unique name is the connector's identity and stays."""

    username: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, max_length=255)
    mode: Literal["test", "open"] | None = None
    idempotency: Literal["replay", "duplicate_error", "reprocess"] | None = None
    magic_values: bool | None = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)


class ConnectorCreate(_Strict):
    unique_name: str = UniqueName
    username: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, max_length=255)
    mode: Literal["test", "open"] = "test"
    idempotency: Literal["replay", "duplicate_error", "reprocess"] = "replay"
    magic_values: bool = True
    timeout_seconds: float = Field(default=10.0, gt=0, le=3600)


class ResetRequest(_Strict):
    rules: bool = False


def describe(error: ValidationError) -> str:
    """One line naming each wrong field and what is wrong with it."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
