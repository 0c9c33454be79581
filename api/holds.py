"""/api/v1/holds: reserve credits before a long run, settle with its actual usage, or release.

Thin over ``billing.services.holds`` (its docstring has the rules: what a hold reserves, lazy
expiry, settling above and below the hold, an expired hold settled as a plain charge).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Path, Router
from pydantic import Field

from api.http import amount, endpoint, json_response, timestamp
from api.shapes import CREDITS_PATTERN, Amount, Answer, Balance, IdempotencyKey, Lead, Metadata, RequestBody
from api.views import CHARGE_ERRORS, UsageEntry, charged_json
from billing import services
from billing.bounds import BIGINT_MAX
from billing.credits import MAX_MILLICREDITS, CreditsInputError, credits_input
from billing.errors import InvalidRequest
from billing.models import Hold
from billing.services.holds import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN

router = Router()


class HoldAnswer(Answer):
    """Credits reserved for a run: counted against the available balance until settled, released or
    expired. A hold moves no credits; its settlement's usage entry does."""

    id: int
    status: Hold.Status
    expired: bool = Field(description="Active but past `expires_at`: it reserves nothing (it may still be settled).")
    amount: Amount = Field(description="What it reserves.")
    idempotency_key: str
    specialist: str | None
    metadata: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    settled_entry: int | None = Field(description="The usage entry that settled it.")
    replayed: bool = Field(description="True: this request was made before; this is its result.")


class HoldRequest(RequestBody):
    amount: str = Field(
        pattern=CREDITS_PATTERN,
        description='Credits to reserve, as a decimal string (e.g. "1500", "12.5"); more than 0.',
    )
    idempotency_key: IdempotencyKey = Field(
        description="Unique per hold in the workspace: a retry returns the first hold (200)."
    )
    expires_in: int = Field(
        DEFAULT_EXPIRES_IN, ge=1, le=MAX_EXPIRES_IN, description="Seconds until the hold stops reserving by itself."
    )
    specialist: str | None = Field(
        None, description="The specialist running the job: its AI usage is charged to it when settled."
    )
    metadata: Metadata = None


class HoldSettleRequest(RequestBody):
    action: str = Field(description="A catalog action's key, e.g. `claude-opus`.")
    quantity: int = Field(1, ge=1, description="The run's actual tokens, pages…")
    idempotency_key: IdempotencyKey = Field(None, description="The usage entry's key (default `hold:<id>`).")
    specialist: str | None = Field(None, description="Who made an AI call (default: the hold's).")
    lead: Lead | None = None
    metadata: Metadata = None


class HoldSettlement(Answer):
    hold: HoldAnswer
    entry: UsageEntry
    balance: Balance = Field(description="The balances right after the entry.")
    replayed: bool = Field(description="True: the hold was settled before; this is that result.")


HoldId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="The hold's id.")]


def hold_json(hold: Hold) -> dict[str, Any]:
    return {
        "id": hold.pk,
        "status": hold.status,
        "expired": hold.is_expired(timezone.now()),
        "amount": amount(hold.amount),
        "idempotency_key": hold.idempotency_key,
        "specialist": hold.specialist_id,
        "metadata": hold.metadata,
        "created_at": timestamp(hold.created_at),
        "expires_at": timestamp(hold.expires_at),
        "closed_at": timestamp(hold.closed_at),
        "settled_entry": hold.settled_entry_id,
        "replayed": bool(getattr(hold, "replayed", False)),
    }


def _millicredits(credits: str) -> int:
    """An amount sent in (a decimal string of credits, within the bound) in millicredits."""
    try:
        return credits_input(credits, minimum=-MAX_MILLICREDITS, grouped=False)
    except CreditsInputError as error:
        raise InvalidRequest(f"amount: {error}", field="amount") from None


@endpoint(
    router,
    "POST",
    "/holds",
    operation_id="hold_place",
    summary="Reserve credits before a long run",
    description=(
        "The amount counts against the available balance at once (available = plan + top-up − active "
        "holds): every charge and hold after it is checked against what is left, so the run is paid for. "
        "No credits move. It expires by itself after `expires_in` seconds. Idempotent by `idempotency_key` "
        "(200 with the first hold; another amount or specialist is 409 `idempotency_conflict`). 402 "
        "`insufficient_credits` when more than is available would be held; 403 `email_unverified` while the "
        "owner of a new sign-up has not verified their email; 409 `too_many_holds` past 100 active holds."
    ),
    tag="Holds",
    response={201: (HoldAnswer, "Held."), 200: (HoldAnswer, "A replay: the first hold.")},
    errors={402: ["insufficient_credits"], 403: ["email_unverified"], 409: ["idempotency_conflict", "too_many_holds"]},
)
def holds(request: HttpRequest, body: HoldRequest) -> HttpResponse:
    hold = services.hold_place(
        workspace=request.api.workspace_id,
        amount=_millicredits(body.amount),
        idempotency_key=body.idempotency_key,
        expires_in=body.expires_in,
        specialist=body.specialist,
        metadata=body.metadata,
    )
    return json_response(hold_json(hold), status=200 if hold.replayed else 201)


@endpoint(
    router,
    "POST",
    "/holds/{hold_id}/settle",
    operation_id="hold_settle",
    summary="Charge a run's actual usage against its hold and free the rest",
    description=(
        "Priced and checked like `POST /charges`; the hold's own reservation pays for it, and beyond the "
        "hold it may use what is free. More than the hold plus the free balance is refused (402, nothing "
        "written, the hold stays active). An expired hold reserves nothing but can still be settled: as a "
        "plain charge against the available balance. A second settle with the same usage answers 200 with "
        "the first result; other usage is 409 `hold_settled`; a released hold is 409 `hold_released`."
    ),
    tag="Holds",
    response={201: (HoldSettlement, "Settled."), 200: (HoldSettlement, "Settled before: that result.")},
    errors={
        **CHARGE_ERRORS,
        404: ["hold_not_found"],
        409: [*CHARGE_ERRORS[409], "hold_settled", "hold_released"],
    },
)
def hold_settle(request: HttpRequest, hold_id: HoldId, body: HoldSettleRequest) -> HttpResponse:
    usage = body.model_dump(exclude_unset=True)
    settled = services.hold_settle(workspace=request.api.workspace_id, hold_id=hold_id, **usage)
    payload = {
        "hold": {**hold_json(settled.hold), "replayed": settled.replayed},
        **charged_json(settled.entry),
        "replayed": settled.replayed,
    }
    return json_response(payload, status=200 if settled.replayed else 201)


@endpoint(
    router,
    "POST",
    "/holds/{hold_id}/release",
    operation_id="hold_release",
    summary="Release a hold: its credits are free again at once",
    description="Releasing a released hold answers it as it is; a settled hold is 409 `hold_settled`. No body.",
    tag="Holds",
    response={200: (HoldAnswer, "Released.")},
    errors={404: ["hold_not_found"], 409: ["hold_settled"]},
)
def hold_release(request: HttpRequest, hold_id: HoldId) -> HttpResponse:
    hold = services.hold_release(workspace=request.api.workspace_id, hold_id=hold_id)
    return json_response(hold_json(hold))
