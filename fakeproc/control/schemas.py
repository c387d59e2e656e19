"""Validated shapes of control API bodies (pydantic), also the source of their OpenAPI schemas."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..processor.cards import BRANDS
from ..processor.faults import MALFORMED_VARIANTS

__all__ = ["ConnectorCreate", "ConnectorUpdate", "ResetRequest", "RuleCreate", "RuleUpdate",
           "ValidationError", "describe"]

UniqueName = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
# The largest number an INTEGER column holds on every store (PostgreSQL's is 32 bits).
MAX_INTEGER = 2**31 - 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*")
    @classmethod
    def _storable(cls, value: object) -> object:
        """PostgreSQL text cannot hold NUL: refuse it here, naming the field, not at the INSERT."""
        texts = [*value.keys(), *value.values()] if isinstance(value, dict) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise ValueError("must not hold a NUL character")
        return value


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


# -- rules -----------------------------------------------------------------------------------

Parameters = dict[str, str]
ErrorCode = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]
Amount = Annotated[Decimal, Field(ge=0, le=1_000_000, strict=False, decimal_places=3)]


class RuleMatch(_Strict):
    """Every given field must match; an empty match matches every attempt."""

    connector: str | None = Field(default=None, max_length=64)
    method: Literal["charge", "tokenize"] | None = None
    payment_method: Literal["credit-card", "ach-debit"] | None = None
    card_number: str | None = Field(default=None, pattern=r"^[0-9]{8,19}$")
    card_brand: Literal[BRANDS] | None = None  # type: ignore[valid-type]
    last4: str | None = Field(default=None, pattern=r"^[0-9]{2,4}$")
    amount: Amount | None = None
    amount_min: Amount | None = None
    amount_max: Amount | None = None
    currency: str | None = Field(default=None, max_length=16)
    postal_code: str | None = Field(default=None, max_length=32)
    cvv: str | None = Field(default=None, pattern=r"^[0-9]{3,4}$")
    description_contains: str | None = Field(default=None, min_length=1, max_length=255)
    parameters: Parameters | None = None
    transaction_id: str | None = Field(default=None, min_length=1, max_length=255)
    attempt: int | None = Field(default=None, ge=1, le=100)

    @model_validator(mode="after")
    def _amount_range(self) -> RuleMatch:
        if self.amount_min is not None and self.amount_max is not None \
                and self.amount_min > self.amount_max:
            raise ValueError("amount_min is above amount_max")
        return self


class _Action(_Strict):
    parameters: Parameters | None = None


class Approve(_Action):
    type: Literal["approve"]


class Decline(_Action):
    type: Literal["decline"]
    error_code: ErrorCode
    error_message: str | None = Field(default=None, max_length=500)


Outcome = Annotated[Union[Approve, Decline], Field(discriminator="type")]


class Delay(_Action):
    type: Literal["delay"]
    seconds: float = Field(gt=0, le=3600)
    outcome: Outcome | None = None


class Hang(_Action):
    type: Literal["hang"]
    seconds: float = Field(default=65.0, gt=0, le=3600)
    charge: bool = False
    outcome: Outcome | None = None


class Drop(_Action):
    type: Literal["drop"]
    charge: bool = True
    outcome: Outcome | None = None


class HttpError(_Action):
    type: Literal["http_error"]
    status: int = Field(ge=400, le=599)
    body: str | None = Field(default=None, max_length=10_000)
    charge: bool = False
    outcome: Outcome | None = None


class Malformed(_Action):
    type: Literal["malformed"]
    variant: Literal[MALFORMED_VARIANTS]  # type: ignore[valid-type]
    status: int | None = Field(default=None, ge=100, le=599)
    charge: bool = True
    outcome: Outcome | None = None


Action = Annotated[Union[Approve, Decline, Delay, Hang, Drop, HttpError, Malformed],
                   Field(discriminator="type")]


class RuleCreate(_Strict):
    match: RuleMatch = Field(default_factory=RuleMatch)
    action: Action
    remaining: int | None = Field(default=None, ge=1, le=MAX_INTEGER)
    probability: float = Field(default=1.0, ge=0, le=1)
    enabled: bool = True
    priority: int = Field(default=100, ge=-1_000_000, le=1_000_000)
    note: str | None = Field(default=None, max_length=255)


class RuleUpdate(_Strict):
    match: RuleMatch | None = None
    action: Action | None = None
    remaining: int | None = Field(default=None, ge=0, le=MAX_INTEGER)
    probability: float | None = Field(default=None, ge=0, le=1)
    enabled: bool | None = None
    priority: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    note: str | None = Field(default=None, max_length=255)


_ACTION_TAGS = frozenset({"approve", "decline", "delay", "hang", "drop", "http_error",
                          "malformed"})
_UNION_TAG_ERRORS = ("union_tag_invalid", "union_tag_not_found")


def describe(error: ValidationError) -> str:
    """One line naming each wrong field (as the body spells it) and what is wrong with it.

    A discriminated union (an action, an outcome) puts the tag it chose into the location:
    `action.delay.seconds` is `action.seconds` in the body; a bad tag is the `type` field."""
    parts = []
    for item in error.errors():
        loc = item["loc"]
        names = [str(part) or '""' for index, part in enumerate(loc)
                 if not (index and loc[index - 1] in ("action", "outcome")
                         and part in _ACTION_TAGS)]
        if item["type"] in _UNION_TAG_ERRORS:
            names.append(str(item.get("ctx", {}).get("discriminator", "type")).strip("'"))
        where = ".".join(names) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
