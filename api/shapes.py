"""The shapes every endpoint shares, as pydantic models: each validates and is its OpenAPI schema.

Request bodies are strict (``7.0`` is no quantity, ``"7"`` no number) and refuse fields they
do not name, so what the document calls invalid is what the endpoint refuses. Responses are
written by the endpoints' serialisers and declared with these models (schemathesis checks
every answer against them).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from billing.services.charging import MAX_KEY_LENGTH, MAX_METADATA_BYTES

CREDITS_PATTERN = r"^-?[0-9]+(\.[0-9]{1,3})?$"
# What the engine's key check accepts: printable ASCII without spaces.
KEY_PATTERN = f"^[!-~]{{1,{MAX_KEY_LENGTH}}}$"
MAX_LEAD_LENGTH = 200


class RequestBody(BaseModel):
    """A JSON body sent in: exact types, no field it does not name."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Answer(BaseModel):
    """A JSON body sent back: every field always present."""

    model_config = ConfigDict(extra="forbid", json_schema_mode_override="serialization")


IdempotencyKey = Annotated[str, Field(pattern=KEY_PATTERN)]
Lead = Annotated[str, Field(max_length=MAX_LEAD_LENGTH)]
Metadata = Annotated[
    dict[str, Any] | None,
    Field(description=f"Free JSON, at most {MAX_METADATA_BYTES:,} bytes encoded; null or left out: none."),
]


class Amount(Answer):
    """An exact amount of credits, twice: `credits` as a decimal string (at most three decimals, no
    thousands separators: a 7-token Haiku call is "0.7") and `millicredits` as an integer
    (1 credit = 1,000 millicredits). Never a float."""

    credits: str = Field(pattern=CREDITS_PATTERN, examples=["0.7", "-1500", "80000"])
    millicredits: int = Field(examples=[700])


class Balance(Answer):
    """The wallet's two buckets and their total."""

    plan: Amount
    topup: Amount
    total: Amount


class Error(BaseModel):
    """Every error has this shape: a stable `code`, a `message` a person can read, and details that
    depend on the code (amounts as `Amount` objects)."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    field: str | None = Field(None, description="The input that was wrong (422).")
    required: Amount | None = None
    available: Amount | None = None
    reserved: Amount | None = Field(None, description="Held by active holds (not available).")
    hold_id: int | None = None
    entry_id: int | None = None
    max_active_holds: int | None = None
    specialist: str | None = None
    resets_at: str | None = Field(None, json_schema_extra={"format": "date-time"})
    daily_cap: Amount | None = None
    spent_today: Amount | None = None
    limit: Literal["monthly_budget"] | None = None
    budget: Amount | None = None
    spent_this_period: Amount | None = None
    leads: list[str] | None = None
    idempotency_key: str | None = None
    retry_after: int | None = Field(None, ge=1)
