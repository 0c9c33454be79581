"""/api/v1/holds: reserve credits before a long run, settle with its actual usage, or release.

Thin over ``billing.services.holds`` (its docstring has the rules: what a hold reserves, lazy
expiry, settling above and below the hold, an expired hold settled as a plain charge).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from api import schema
from api.http import ApiError, amount, amount_param, endpoint, json_response, timestamp
from api.views import _CHARGE_ERRORS, KEY_PATTERN, METADATA_FIELD, _ok, charged_json
from billing import services
from billing.bounds import BIGINT_MAX, id_parsed
from billing.models import Hold
from billing.services.charging import fields_checked
from billing.services.holds import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN

AMOUNT = schema.ref("Amount")

HOLD = schema.schema_component(
    "Hold",
    {
        "type": "object",
        "description": "Credits reserved for a run: counted against the available balance until settled, "
        "released or expired. A hold moves no credits; its settlement's usage entry does.",
        "required": [
            "id",
            "status",
            "expired",
            "amount",
            "idempotency_key",
            "specialist",
            "metadata",
            "created_at",
            "expires_at",
            "closed_at",
            "settled_entry",
            "replayed",
        ],
        "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string", "enum": list(Hold.Status.values)},
            "expired": {
                "type": "boolean",
                "description": "Active but past `expires_at`: it reserves nothing (it may still be settled).",
            },
            "amount": {"allOf": [AMOUNT], "description": "What it reserves."},
            "idempotency_key": {"type": "string"},
            "specialist": {"type": ["string", "null"]},
            "metadata": {"type": "object"},
            "created_at": {"type": "string", "format": "date-time"},
            "expires_at": {"type": "string", "format": "date-time"},
            "closed_at": {"type": ["string", "null"], "format": "date-time"},
            "settled_entry": {"type": ["integer", "null"], "description": "The usage entry that settled it."},
            "replayed": {"type": "boolean", "description": "True: this request was made before; this is its result."},
        },
        "additionalProperties": False,
    },
)
_HOLD_FIELDS = {
    "amount": {
        "type": "string",
        "pattern": schema.CREDITS_PATTERN,
        "description": 'Credits to reserve, as a decimal string (e.g. "1500", "12.5"); more than 0.',
    },
    "idempotency_key": {
        "type": "string",
        "pattern": KEY_PATTERN,
        "description": "Unique per hold in the workspace: a retry returns the first hold (200).",
    },
    "expires_in": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_EXPIRES_IN,
        "default": DEFAULT_EXPIRES_IN,
        "description": "Seconds until the hold stops reserving by itself.",
    },
    "specialist": {
        "type": ["string", "null"],
        "description": "The specialist running the job: its AI usage is charged to it when settled.",
    },
    "metadata": METADATA_FIELD,
}
HOLD_REQUEST = schema.schema_component(
    "HoldRequest",
    {
        "type": "object",
        "required": ["amount", "idempotency_key"],
        "properties": _HOLD_FIELDS,
        "additionalProperties": False,
    },
)
_SETTLE_FIELDS = {
    "action": {"type": "string", "description": "A catalog action's key, e.g. `claude-opus`."},
    "quantity": {"type": "integer", "minimum": 1, "default": 1, "description": "The run's actual tokens, pages…"},
    "idempotency_key": {
        "type": "string",
        "pattern": KEY_PATTERN,
        "description": "The usage entry's key (default `hold:<id>`).",
    },
    "specialist": {"type": ["string", "null"], "description": "Who made an AI call (default: the hold's)."},
    "lead": {"type": ["string", "null"], "maxLength": 200},
    "metadata": METADATA_FIELD,
}
SETTLE_REQUEST = schema.schema_component(
    "HoldSettleRequest",
    {"type": "object", "required": ["action"], "properties": _SETTLE_FIELDS, "additionalProperties": False},
)
SETTLEMENT = schema.schema_component(
    "HoldSettlement",
    {
        "type": "object",
        "required": ["hold", "entry", "balance", "replayed"],
        "properties": {
            "hold": HOLD,
            "entry": schema.ref("UsageEntry"),
            "balance": {"allOf": [schema.ref("Balance")], "description": "The balances right after the entry."},
            "replayed": {"type": "boolean", "description": "True: the hold was settled before; this is that result."},
        },
        "additionalProperties": False,
    },
)
_HOLD_ID = {
    "name": "hold_id",
    "in": "path",
    "required": True,
    "description": "The hold's id.",
    "schema": {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX},
}


def _path_id(raw: str) -> int:
    """The path's hold id. Routed as any segment, so a malformed one is still authenticated first (401)."""
    hold_id = id_parsed(raw)
    if hold_id is not None:
        return hold_id
    raise ApiError(422, "invalid_request", "hold_id must be a hold's id (a positive whole number).", field="hold_id")


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


@endpoint(
    "POST",
    "/holds",
    operation_id="hold_place",
    summary="Reserve credits before a long run",
    description=(
        "The amount counts against the available balance at once (available = plan + top-up − active "
        "holds): every charge and hold after it is checked against what is left, so the run is paid for. "
        "No credits move. It expires by itself after `expires_in` seconds. Idempotent by `idempotency_key` "
        "(200 with the first hold; another amount or specialist is 409 `idempotency_conflict`). 402 "
        "`insufficient_credits` when more than is available would be held; 409 `too_many_holds` past 100 "
        "active holds."
    ),
    tag="Holds",
    request_body=HOLD_REQUEST,
    responses={201: _ok("Held.", HOLD), 200: _ok("A replay: the first hold.", HOLD)},
    errors={402: ["insufficient_credits"], 409: ["idempotency_conflict", "too_many_holds"]},
)
def holds(request: HttpRequest) -> HttpResponse:
    call = request.api
    body = call.body
    fields_checked(body, allowed=_HOLD_FIELDS, required=("amount", "idempotency_key"))
    hold = services.hold_place(
        workspace=call.workspace_id,
        amount=amount_param(body["amount"], field="amount"),
        idempotency_key=body["idempotency_key"],
        expires_in=body.get("expires_in", DEFAULT_EXPIRES_IN),
        specialist=body.get("specialist"),
        metadata=body.get("metadata"),
    )
    return json_response(hold_json(hold), status=200 if hold.replayed else 201)


@endpoint(
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
    parameters=[_HOLD_ID],
    request_body=SETTLE_REQUEST,
    responses={201: _ok("Settled.", SETTLEMENT), 200: _ok("Settled before: that result.", SETTLEMENT)},
    errors={
        **_CHARGE_ERRORS,
        404: ["hold_not_found"],
        409: [*_CHARGE_ERRORS[409], "hold_settled", "hold_released"],
    },
)
def hold_settle(request: HttpRequest, hold_id: str) -> HttpResponse:
    call = request.api
    fields_checked(call.body, allowed=_SETTLE_FIELDS, required=("action",))
    settled = services.hold_settle(workspace=call.workspace_id, hold_id=_path_id(hold_id), **call.body)
    payload = {
        "hold": {**hold_json(settled.hold), "replayed": settled.replayed},
        **charged_json(settled.entry),
        "replayed": settled.replayed,
    }
    return json_response(payload, status=200 if settled.replayed else 201)


@endpoint(
    "POST",
    "/holds/{hold_id}/release",
    operation_id="hold_release",
    summary="Release a hold: its credits are free again at once",
    description="Releasing a released hold answers it as it is; a settled hold is 409 `hold_settled`. No body.",
    tag="Holds",
    parameters=[_HOLD_ID],
    responses={200: _ok("Released.", HOLD)},
    errors={404: ["hold_not_found"], 409: ["hold_settled"]},
)
def hold_release(request: HttpRequest, hold_id: str) -> HttpResponse:
    fields_checked(request.api.body, allowed=())
    hold = services.hold_release(workspace=request.api.workspace_id, hold_id=_path_id(hold_id))
    return json_response(hold_json(hold))
