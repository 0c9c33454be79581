"""The metering endpoints under /api/v1/: thin, each calls the same service or selector as the pages.

Each view is declared with :func:`api.http.endpoint`, which carries its OpenAPI operation;
the shapes they answer with are the schema components defined here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from api import schema
from api.credentials import byok_key_read
from api.http import ApiError, amount, endpoint, json_response, string_field, timestamp
from billing import selectors, services
from billing.bounds import BIGINT_MAX, whole_number
from billing.forms import LedgerFilterForm
from billing.models import LeadState, LedgerEntry, Wallet, Workspace
from billing.services.charging import MAX_BATCH, MAX_KEY_LENGTH, MAX_METADATA_BYTES, fields_checked

# --- Shapes ------------------------------------------------------------------------------------

AMOUNT = schema.ref("Amount")
BALANCE = schema.ref("Balance")
_LEAD = {"type": "string", "minLength": 1, "maxLength": 200}
# What key_checked and metadata_checked accept, as the request schemas say it (holds use them too).
KEY_PATTERN = f"^[!-~]{{1,{MAX_KEY_LENGTH}}}$"  # printable ASCII without spaces
METADATA_FIELD = {
    "type": ["object", "null"],
    "description": f"Free JSON, at most {MAX_METADATA_BYTES:,} bytes encoded; null or left out: none.",
}

EVENT_FIELDS = {
    "action": {"type": "string", "description": "A catalog action's key, e.g. `claude-haiku`, `linkedin-dm`."},
    "idempotency_key": {
        "type": "string",
        "pattern": KEY_PATTERN,
        "description": "Unique per charge in the workspace: a retry with the same key returns the first result.",
    },
    "quantity": {
        "type": "integer",
        "minimum": 1,
        "default": 1,
        "description": "Tokens for AI actions, pages for a search, 1 otherwise (at most the action's max_quantity).",
    },
    "specialist": {
        "type": ["string", "null"],
        "description": "Who made an AI call (default `other`); infrastructure takes the catalog's specialist.",
    },
    "lead": {
        "type": ["string", "null"],
        "maxLength": 200,
        "description": "Only for automated sequence steps: refused once the lead replied.",
    },
    "metadata": METADATA_FIELD,
}
CHARGE_REQUEST = schema.schema_component(
    "ChargeRequest",
    {
        "type": "object",
        "required": ["action", "idempotency_key"],
        "properties": EVENT_FIELDS,
        "additionalProperties": False,
        "examples": [
            {"action": "claude-haiku", "quantity": 7, "idempotency_key": "run-81/step-3", "specialist": "outreach"},
            {"action": "gmail-send", "idempotency_key": "mail-1", "lead": "lead-7", "metadata": {"campaign": "q3"}},
        ],
    },
)
ENTRY = schema.schema_component(
    "UsageEntry",
    {
        "type": "object",
        "description": "A usage entry of the ledger (append-only).",
        "required": [
            "id",
            "created_at",
            "kind",
            "idempotency_key",
            "action",
            "specialist",
            "quantity",
            "lead",
            "byok",
            "unit_price",
            "list_amount",
            "amount",
            "plan_delta",
            "topup_delta",
            "balance_after",
            "metadata",
            "replayed",
        ],
        "properties": {
            "id": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "kind": {"type": "string", "enum": [LedgerEntry.Kind.USAGE]},
            "idempotency_key": {"type": "string"},
            "action": {"type": "string"},
            "specialist": {"type": "string"},
            "quantity": {"type": "integer"},
            "lead": {"type": "string"},
            "byok": {"type": "boolean", "description": "Paid with the workspace's own Anthropic key: debited 0."},
            "unit_price": AMOUNT,
            "list_amount": {"allOf": [AMOUNT], "description": "What it costs at list price (differs under BYOK)."},
            "amount": {"allOf": [AMOUNT], "description": "The change to the total balance (negative: a debit)."},
            "plan_delta": AMOUNT,
            "topup_delta": AMOUNT,
            "balance_after": BALANCE,
            "metadata": {"type": "object"},
            "replayed": {"type": "boolean", "description": "True: this key was charged before; this is that entry."},
        },
        "additionalProperties": False,
    },
)
CHARGE_RESULT = schema.schema_component(
    "ChargeResult",
    {
        "type": "object",
        "required": ["entry", "balance", "replayed"],
        "properties": {
            "entry": ENTRY,
            "balance": {"allOf": [BALANCE], "description": "The balances right after this entry."},
            "replayed": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
)
BATCH_RESULT = schema.schema_component(
    "BatchResult",
    {
        "type": "object",
        "required": ["entries", "charged", "replayed", "balance"],
        "properties": {
            "entries": {"type": "array", "items": ENTRY, "description": "One per event, in the request's order."},
            "charged": {"type": "integer", "description": "Events charged by this request."},
            "replayed": {"type": "integer", "description": "Events whose key was charged before (not charged again)."},
            "balance": {"allOf": [BALANCE], "description": "The balances after the latest of these entries."},
        },
        "additionalProperties": False,
    },
)
LEAD_STATE = schema.schema_component(
    "LeadState",
    {
        "type": "object",
        "required": ["lead", "paused", "replied_at", "resumed_at"],
        "properties": {
            "lead": {"type": "string"},
            "paused": {"type": "boolean", "description": "True: its sequence steps are refused (409)."},
            "replied_at": {"type": ["string", "null"], "format": "date-time"},
            "resumed_at": {"type": ["string", "null"], "format": "date-time"},
        },
        "additionalProperties": False,
    },
)
LEAD_REQUEST = schema.schema_component(
    "LeadRequest",
    {
        "type": "object",
        "required": ["lead"],
        "properties": {"lead": _LEAD},
        "additionalProperties": False,
        "examples": [{"lead": "lead-7"}],
    },
)


def _ok(description: str, component: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": component}}}


# --- Serialising ---------------------------------------------------------------------------------


def _balance(plan: int, topup: int) -> dict[str, Any]:
    return {"plan": amount(plan), "topup": amount(topup), "total": amount(plan + topup)}


def entry_json(entry: LedgerEntry, action_key: str) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "created_at": timestamp(entry.created_at),
        "kind": entry.kind,
        "idempotency_key": entry.idempotency_key,
        "action": action_key,
        "specialist": entry.specialist_id,
        "quantity": entry.quantity,
        "lead": entry.lead,
        "byok": entry.byok,
        "unit_price": amount(entry.unit_price),
        "list_amount": amount(entry.list_amount),
        "amount": amount(entry.amount),
        "plan_delta": amount(entry.plan_delta),
        "topup_delta": amount(entry.topup_delta),
        "balance_after": _balance(entry.plan_balance_after, entry.topup_balance_after),
        "metadata": entry.metadata,
        "replayed": bool(entry.replayed),
    }


def _entries_json(entries: list[LedgerEntry]) -> list[dict[str, Any]]:
    tools = selectors.tool_names(e.action_id for e in entries)
    return [entry_json(e, tools[e.action_id].key) for e in entries]


def charged_json(entry: LedgerEntry) -> dict[str, Any]:
    """A charge's entry and the balance it left (schema ``ChargeResult``'s, and a settled hold's)."""
    (shown,) = _entries_json([entry])
    return {"entry": shown, "balance": shown["balance_after"]}


# --- Charges -------------------------------------------------------------------------------------

_CHARGE_ERRORS = {
    402: ["insufficient_credits"],
    409: ["idempotency_conflict", "sequence_paused"],
    422: ["invalid_request", "unknown_action"],
    429: ["daily_cap_reached"],
}


@endpoint(
    "POST",
    "/charges",
    operation_id="charge",
    summary="Charge one usage event",
    description=(
        "Debits the plan bucket first, then top-up credits, in one statement. Idempotent by "
        "`idempotency_key`: a retry answers 200 with the first result; the same key with another action, "
        "quantity or lead is a 409 `idempotency_conflict`. Refusals write nothing: 402 "
        "`insufficient_credits`, 409 `sequence_paused` (the lead replied), 429 `daily_cap_reached` (a "
        "specialist's daily cap, or the monthly budget, with `Retry-After` until it resets)."
    ),
    tag="Charges",
    request_body=CHARGE_REQUEST,
    responses={201: _ok("Charged.", CHARGE_RESULT), 200: _ok("A replay: the first result.", CHARGE_RESULT)},
    errors=_CHARGE_ERRORS,
)
def charges(request: HttpRequest) -> HttpResponse:
    call = request.api
    body = call.body
    fields_checked(body, allowed=EVENT_FIELDS, required=("action", "idempotency_key"))
    entry = services.charge(workspace=call.workspace_id, **body)
    payload = {**charged_json(entry), "replayed": bool(entry.replayed)}
    return json_response(payload, status=200 if entry.replayed else 201)


@endpoint(
    "POST",
    "/charges/batch",
    operation_id="charge_batch",
    summary=f"Charge up to {MAX_BATCH:,} usage events, all or nothing",
    description=(
        "One transaction: either every event is charged (or returned as a replay of its key) or none is, "
        "and the refusal names the event (`events[3].quantity`). 201 when any event was charged now, 200 "
        "when every one was a replay."
    ),
    tag="Charges",
    request_body={
        "type": "object",
        "required": ["events"],
        "properties": {"events": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": CHARGE_REQUEST}},
        "additionalProperties": False,
    },
    max_body="API_MAX_BATCH_BODY_BYTES",
    responses={201: _ok("Charged.", BATCH_RESULT), 200: _ok("Every event was a replay.", BATCH_RESULT)},
    errors=_CHARGE_ERRORS,
)
def charges_batch(request: HttpRequest) -> HttpResponse:
    call = request.api
    fields_checked(call.body, allowed=("events",), required=("events",))
    entries = services.charge_batch(workspace=call.workspace_id, events=call.body["events"])
    latest = max(entries, key=lambda e: e.pk)
    replayed = sum(1 for e in entries if e.replayed)
    payload = {
        "entries": _entries_json(entries),
        "charged": len(entries) - replayed,
        "replayed": replayed,
        "balance": _balance(latest.plan_balance_after, latest.topup_balance_after),
    }
    return json_response(payload, status=200 if replayed == len(entries) else 201)


# --- Reading -------------------------------------------------------------------------------------

BALANCE_SUMMARY = schema.schema_component(
    "BalanceSummary",
    {
        "type": "object",
        "required": [
            "workspace",
            "plan",
            "seats",
            "allowance",
            "used",
            "balance",
            "period_start",
            "period_end",
            "level",
            "revision",
            "reserved",
            "available",
        ],
        "properties": {
            "workspace": {"type": "integer"},
            "plan": {
                "type": "object",
                "required": ["key", "name"],
                "properties": {"key": {"type": "string"}, "name": {"type": "string"}},
                "additionalProperties": False,
            },
            "seats": {"type": "integer"},
            "allowance": {"allOf": [AMOUNT], "description": "Credits granted to the plan bucket this period."},
            "used": {"allOf": [AMOUNT], "description": "Of the allowance, used so far."},
            "balance": BALANCE,
            "period_start": {"type": "string", "format": "date-time"},
            "period_end": {"type": "string", "format": "date-time", "description": "When the bucket renews."},
            "level": {"type": "string", "enum": ["ok", "low", "empty"]},
            "revision": {"type": "integer", "description": "Changes whenever the wallet does."},
            "reserved": {"allOf": [AMOUNT], "description": "Held by active holds (running jobs)."},
            "available": {
                "allOf": [AMOUNT],
                "description": "What a charge or a new hold may use now: the total less what holds reserve.",
            },
        },
        "additionalProperties": False,
    },
)


@endpoint(
    "GET",
    "/balance",
    operation_id="balance",
    summary="The workspace's balance",
    tag="Reading",
    responses={200: _ok("The balance card's figures.", BALANCE_SUMMARY)},
)
def balance(request: HttpRequest) -> HttpResponse:
    wallet = Wallet.objects.select_related("workspace__plan").get(workspace_id=request.api.workspace_id)
    summary = selectors.balance_of(wallet)
    return json_response(
        {
            "workspace": summary.workspace_id,
            "plan": {"key": summary.plan.key, "name": summary.plan.name},
            "seats": summary.seats,
            "allowance": amount(summary.allowance),
            "used": amount(summary.used),
            "balance": _balance(summary.plan_balance, summary.topup_balance),
            "period_start": timestamp(summary.period_start),
            "period_end": timestamp(summary.period_end),
            "level": summary.level,
            "revision": summary.revision,
            "reserved": amount(summary.reserved),
            "available": amount(summary.available),
        }
    )


LEDGER_ROW = schema.schema_component(
    "LedgerRow",
    {
        "type": "object",
        "required": [
            "id",
            "created_at",
            "kind",
            "specialist",
            "action",
            "quantity",
            "unit",
            "amount",
            "plan_delta",
            "topup_delta",
            "balance_after",
            "byok",
            "list_amount",
            "lead",
            "reason",
            "idempotency_key",
            "external_ref",
        ],
        "properties": {
            "id": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "kind": {"type": "string", "enum": list(LedgerEntry.Kind.values)},
            "specialist": {"type": ["string", "null"], "description": "The specialist's key (usage)."},
            "action": {"type": ["string", "null"], "description": "The tool's catalog key (usage)."},
            "quantity": {"type": ["integer", "null"]},
            "unit": {"type": ["string", "null"], "enum": ["token", "page", "call", None]},
            "amount": AMOUNT,
            "plan_delta": AMOUNT,
            "topup_delta": AMOUNT,
            "balance_after": BALANCE,
            "byok": {"type": "boolean"},
            "list_amount": {"anyOf": [AMOUNT, {"type": "null"}]},
            "lead": {"type": "string"},
            "reason": {"type": "string"},
            "idempotency_key": {"type": "string"},
            "external_ref": {"type": "string"},
        },
        "additionalProperties": False,
    },
)
TRANSACTIONS_PAGE = schema.schema_component(
    "TransactionsPage",
    {
        "type": "object",
        "required": ["entries", "next_cursor"],
        "properties": {
            "entries": {"type": "array", "items": LEDGER_ROW},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next (older) page; null on the last page.",
            },
        },
        "additionalProperties": False,
    },
)
MAX_PAGE = 200


def _query(name: str, description: str, schema_: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema_}


@endpoint(
    "GET",
    "/transactions",
    operation_id="transactions",
    summary="The ledger, newest first, a keyset page at a time",
    description=(
        "The Transactions list of Settings → Billing & Credits, with its filters. Dates are days in the "
        "workspace's time zone, both ends included."
    ),
    tag="Reading",
    parameters=[
        _query("specialist", "A specialist's key.", {"type": "string"}),
        _query("action", "A tool's catalog key.", {"type": "string"}),
        _query("kind", "An entry kind.", {"type": "string", "enum": list(LedgerEntry.Kind.values)}),
        _query("date_from", "First day (YYYY-MM-DD).", {"type": "string", "format": "date"}),
        _query("date_to", "Last day (YYYY-MM-DD).", {"type": "string", "format": "date"}),
        _query("cursor", "`next_cursor` of the previous page.", {"type": "string", "pattern": "^[0-9]{1,18}$"}),
        _query("limit", "Entries per page.", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}),
    ],
    responses={200: _ok("A page of entries.", TRANSACTIONS_PAGE)},
)
def transactions(request: HttpRequest) -> HttpResponse:
    query = request.GET
    for name in query:
        if query[name] == "":  # the page's form reads "" as "any"; the API names nothing it does not filter
            raise ApiError(422, "invalid_request", f"{name} is empty: leave it out to not filter by it.", field=name)
    form = LedgerFilterForm({name: query.get(name, "") for name in LedgerFilterForm.base_fields})
    if not form.is_valid():
        field, messages = next(iter(form.errors.items()))
        raise ApiError(422, "invalid_request", " ".join(messages), field=field if field != "__all__" else None)
    cursor = _int_param(query, "cursor", low=1, high=BIGINT_MAX, default=None)
    limit = _int_param(query, "limit", low=1, high=MAX_PAGE, default=50)
    workspace_id = request.api.workspace_id
    zone = Workspace.objects.only("time_zone").get(pk=workspace_id).zone
    page = selectors.ledger_page(
        workspace_id=workspace_id, filters=form.filters(), zone=zone, before=cursor, limit=limit
    )
    rows = [
        {
            "id": row.pk,
            "created_at": timestamp(row.created_at),
            "kind": row.kind,
            "specialist": row.specialist_key or None,
            "action": row.tool.key if row.tool else None,
            "quantity": row.quantity,
            "unit": row.tool.unit if row.tool else None,
            "amount": amount(row.amount),
            "plan_delta": amount(row.plan_delta),
            "topup_delta": amount(row.topup_delta),
            "balance_after": _balance(row.plan_balance_after, row.topup_balance_after),
            "byok": row.byok,
            "list_amount": None if row.list_amount is None else amount(row.list_amount),
            "lead": row.lead,
            "reason": row.reason,
            "idempotency_key": row.idempotency_key,
            "external_ref": row.external_ref,
        }
        for row in page.entries
    ]
    next_cursor = None if page.next_cursor is None else str(page.next_cursor)
    return json_response({"entries": rows, "next_cursor": next_cursor})


def _int_param(query, name: str, *, low: int, high: int, default: int | None) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    value = whole_number(raw, low=low, high=high)
    if value is None:
        raise ApiError(422, "invalid_request", f"{name} must be a whole number from {low} to {high}.", field=name)
    return value


CATALOG = schema.schema_component(
    "Catalog",
    {
        "type": "object",
        "required": ["plans", "packs", "specialists", "actions"],
        "properties": {
            "plans": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "name", "price_cents", "allowance", "per_seat"],
                    "properties": {
                        "key": {"type": "string"},
                        "name": {"type": "string"},
                        "price_cents": {
                            "type": "integer",
                            "description": "Monthly, in US cents (per seat if per_seat).",
                        },
                        "allowance": {"allOf": [AMOUNT], "description": "Monthly credits (per seat if per_seat)."},
                        "per_seat": {"type": "boolean"},
                    },
                    "additionalProperties": False,
                },
            },
            "packs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "credits", "price_cents", "discount_percent"],
                    "properties": {
                        "key": {"type": "string"},
                        "credits": AMOUNT,
                        "price_cents": {"type": "integer"},
                        "discount_percent": {"type": "integer", "description": "Against the smallest pack's rate."},
                    },
                    "additionalProperties": False,
                },
            },
            "specialists": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "label"],
                    "properties": {"key": {"type": "string"}, "label": {"type": "string"}},
                    "additionalProperties": False,
                },
            },
            "actions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "key",
                        "label",
                        "description",
                        "category",
                        "specialist",
                        "unit",
                        "unit_price",
                        "max_quantity",
                    ],
                    "properties": {
                        "key": {"type": "string"},
                        "label": {"type": "string"},
                        "description": {"type": "string"},
                        "category": {"type": "string", "enum": ["ai", "infrastructure"]},
                        "specialist": {"type": ["string", "null"]},
                        "unit": {"type": "string", "enum": ["token", "page", "call"]},
                        "unit_price": {"allOf": [AMOUNT], "description": "Per unit (per token for AI)."},
                        "max_quantity": {"type": "integer"},
                    },
                    "additionalProperties": False,
                },
            },
        },
        "additionalProperties": False,
    },
)


@endpoint(
    "GET",
    "/catalog",
    operation_id="catalog",
    summary="Plans, top-up packs, specialists and the priced actions",
    tag="Reading",
    workspace=False,
    responses={200: _ok("The price catalog.", CATALOG)},
)
def catalog(request: HttpRequest) -> HttpResponse:
    overview = selectors.catalog_overview()
    return json_response(
        {
            "plans": [
                {
                    "key": p.key,
                    "name": p.name,
                    "price_cents": p.price_cents,
                    "allowance": amount(p.allowance),
                    "per_seat": p.per_seat,
                }
                for p in overview.plans
            ],
            "packs": [
                {
                    "key": o.pack.key,
                    "credits": amount(o.pack.amount),
                    "price_cents": o.pack.price_cents,
                    "discount_percent": o.discount_percent,
                }
                for o in overview.packs
            ],
            "specialists": [{"key": k, "label": v} for k, v in selectors.specialist_names().items()],
            "actions": [
                {
                    "key": a.key,
                    "label": a.label,
                    "description": a.description,
                    "category": a.category,
                    "specialist": a.specialist_id,
                    "unit": a.unit,
                    "unit_price": amount(a.unit_price),
                    "max_quantity": a.max_quantity,
                }
                for group in overview.action_groups
                for a in group.actions
            ],
        }
    )


# --- Reply detection -----------------------------------------------------------------------------


def _lead_state(request: HttpRequest, service: Callable[[int, str], LeadState]) -> HttpResponse:
    """Pause or resume the lead named in the body with ``service``; answer its state."""
    call = request.api
    fields_checked(call.body, allowed=("lead",), required=("lead",))
    state = service(call.workspace_id, string_field(call.body, "lead"))
    return json_response(
        {
            "lead": state.lead,
            "paused": state.paused,
            "replied_at": timestamp(state.replied_at),
            "resumed_at": timestamp(state.resumed_at),
        }
    )


@endpoint(
    "POST",
    "/replies",
    operation_id="reply_record",
    summary="A lead replied: pause its sequence",
    description="Its automated sequence steps (charges naming this `lead`) are refused with 409 `sequence_paused`.",
    tag="Reply detection",
    request_body=LEAD_REQUEST,
    responses={200: _ok("The lead's state.", LEAD_STATE)},
)
def replies(request: HttpRequest) -> HttpResponse:
    return _lead_state(request, services.record_reply)


@endpoint(
    "POST",
    "/replies/resume",
    operation_id="reply_resume",
    summary="Resume a lead's sequence",
    description="Its sequence steps are charged again. The lead is in the body (leads may contain any character).",
    tag="Reply detection",
    request_body=LEAD_REQUEST,
    responses={200: _ok("The lead's state.", LEAD_STATE)},
)
def replies_resume(request: HttpRequest) -> HttpResponse:
    return _lead_state(request, services.resume_lead)


# --- BYOK ----------------------------------------------------------------------------------------

BYOK_KEY = schema.schema_component(
    "ByokKey",
    {
        "type": "object",
        "required": ["byok", "api_key"],
        "properties": {
            "byok": {"type": "boolean", "description": "Whether the workspace has its own Anthropic key."},
            "api_key": {"type": ["string", "null"], "description": "The decrypted key; null when none is set."},
        },
        "additionalProperties": False,
    },
)


@endpoint(
    "GET",
    "/byok-key",
    operation_id="byok_key",
    summary="The workspace's decrypted Anthropic key (service tokens only; every read is logged)",
    tag="BYOK",
    service_only=True,
    responses={200: _ok("The key, or null.", BYOK_KEY)},
)
def byok_key(request: HttpRequest) -> HttpResponse:
    workspace = Workspace.objects.get(pk=request.api.workspace_id)
    key = byok_key_read(caller=request.api.caller, workspace=workspace)
    return json_response({"byok": bool(key), "api_key": key or None})
