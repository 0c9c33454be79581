"""The metering endpoints under /api/v1/: thin, each calls the same service or selector as the pages.

Each view is a django-ninja operation declared with :func:`api.http.endpoint`; the pydantic
models here are its request's validation and, with its answers', its OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router
from pydantic import ConfigDict, Field

from api.credentials import byok_key_read
from api.http import ApiError, amount, endpoint, json_response, timestamp
from api.shapes import Amount, Answer, Balance, IdempotencyKey, Lead, Metadata, RequestBody
from billing import selectors, services
from billing.forms import LedgerFilterForm
from billing.models import LeadState, LedgerEntry, Wallet, Workspace
from billing.services.charging import MAX_BATCH

router = Router()


# --- Shapes ------------------------------------------------------------------------------------


class ChargeRequest(RequestBody):
    """One usage event."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"action": "claude-haiku", "quantity": 7, "idempotency_key": "run-81/step-3", "specialist": "outreach"},
                {"action": "gmail-send", "idempotency_key": "mail-1", "lead": "lead-7", "metadata": {"campaign": "q3"}},
            ]
        }
    )

    action: str = Field(description="A catalog action's key, e.g. `claude-haiku`, `linkedin-dm`.")
    idempotency_key: IdempotencyKey = Field(
        description="Unique per charge in the workspace: a retry with the same key returns the first result."
    )
    quantity: int = Field(
        1,
        ge=1,
        description="Tokens for AI actions, pages for a search, 1 otherwise (at most the action's max_quantity).",
    )
    specialist: str | None = Field(
        None, description="Who made an AI call (default `other`); infrastructure takes the catalog's specialist."
    )
    lead: Lead | None = Field(None, description="Only for automated sequence steps: refused once the lead replied.")
    metadata: Metadata = None


class BatchRequest(RequestBody):
    events: list[ChargeRequest] = Field(min_length=1, max_length=MAX_BATCH)


class UsageEntry(Answer):
    """A usage entry of the ledger (append-only)."""

    id: int
    created_at: datetime
    kind: Literal[LedgerEntry.Kind.USAGE]
    idempotency_key: str
    action: str
    specialist: str
    quantity: int
    lead: str
    byok: bool = Field(description="Paid with the workspace's own Anthropic key: debited 0.")
    unit_price: Amount
    list_amount: Amount = Field(description="What it costs at list price (differs under BYOK).")
    amount: Amount = Field(description="The change to the total balance (negative: a debit).")
    plan_delta: Amount
    topup_delta: Amount
    balance_after: Balance
    metadata: dict[str, Any]
    replayed: bool = Field(description="True: this key was charged before; this is that entry.")


class ChargeResult(Answer):
    entry: UsageEntry
    balance: Balance = Field(description="The balances right after this entry.")
    replayed: bool


class BatchResult(Answer):
    entries: list[UsageEntry] = Field(description="One per event, in the request's order.")
    charged: int = Field(description="Events charged by this request.")
    replayed: int = Field(description="Events whose key was charged before (not charged again).")
    balance: Balance = Field(description="The balances after the latest of these entries.")


class LeadRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"lead": "lead-7"}]})

    lead: Lead = Field(min_length=1)


class LeadStateAnswer(Answer):
    lead: str
    paused: bool = Field(description="True: its sequence steps are refused (409).")
    replied_at: datetime | None
    resumed_at: datetime | None


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

# What a charge's refusals answer, by status (settling a hold charges too).
CHARGE_ERRORS = {
    402: ["insufficient_credits"],
    403: ["email_unverified"],
    409: ["idempotency_conflict", "sequence_paused"],
    422: ["invalid_request", "unknown_action"],
    429: ["daily_cap_reached"],
}


@endpoint(
    router,
    "POST",
    "/charges",
    operation_id="charge",
    summary="Charge one usage event",
    description=(
        "Debits the plan bucket first, then top-up credits, in one statement. Idempotent by "
        "`idempotency_key`: a retry answers 200 with the first result; the same key with another action, "
        "quantity or lead is a 409 `idempotency_conflict`. Refusals write nothing: 402 "
        "`insufficient_credits`, 403 `email_unverified` (a new sign-up whose owner has not verified their "
        "email yet), 409 `sequence_paused` (the lead replied), 429 `daily_cap_reached` (a "
        "specialist's daily cap, or the monthly budget, with `Retry-After` until it resets)."
    ),
    tag="Charges",
    response={201: (ChargeResult, "Charged."), 200: (ChargeResult, "A replay: the first result.")},
    errors=CHARGE_ERRORS,
)
def charges(request: HttpRequest, event: ChargeRequest) -> HttpResponse:
    entry = services.charge(workspace=request.api.workspace_id, **event.model_dump(exclude_unset=True))
    payload = {**charged_json(entry), "replayed": bool(entry.replayed)}
    return json_response(payload, status=200 if entry.replayed else 201)


@endpoint(
    router,
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
    max_body="API_MAX_BATCH_BODY_BYTES",
    response={201: (BatchResult, "Charged."), 200: (BatchResult, "Every event was a replay.")},
    errors=CHARGE_ERRORS,
)
def charges_batch(request: HttpRequest, batch: BatchRequest) -> HttpResponse:
    events = [event.model_dump(exclude_unset=True) for event in batch.events]
    entries = services.charge_batch(workspace=request.api.workspace_id, events=events)
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


class PlanName(Answer):
    key: str
    name: str


class BalanceSummary(Answer):
    workspace: int
    plan: PlanName
    seats: int
    allowance: Amount = Field(description="Credits granted to the plan bucket this period.")
    used: Amount = Field(description="Of the allowance, used so far.")
    balance: Balance
    period_start: datetime
    period_end: datetime = Field(description="When the bucket renews.")
    level: Literal["ok", "low", "empty"]
    revision: int = Field(description="Changes whenever the wallet does.")
    reserved: Amount = Field(description="Held by active holds (running jobs).")
    available: Amount = Field(description="What a charge or a new hold may use now: the total less what holds reserve.")


@endpoint(
    router,
    "GET",
    "/balance",
    operation_id="balance",
    summary="The workspace's balance",
    tag="Reading",
    response={200: (BalanceSummary, "The balance card's figures.")},
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


class LedgerRow(Answer):
    id: int
    created_at: datetime
    kind: LedgerEntry.Kind
    specialist: str | None = Field(description="The specialist's key (usage).")
    action: str | None = Field(description="The tool's catalog key (usage).")
    quantity: int | None
    unit: Literal["token", "page", "call"] | None
    amount: Amount
    plan_delta: Amount
    topup_delta: Amount
    balance_after: Balance
    byok: bool
    list_amount: Amount | None
    lead: str
    reason: str
    idempotency_key: str
    external_ref: str


class TransactionsPage(Answer):
    entries: list[LedgerRow]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null on the last page.")


MAX_PAGE = 200


class TransactionFilters(RequestBody):
    """The query: each left out does not filter; none may be empty."""

    model_config = ConfigDict(strict=False)  # a query is text: numbers and dates are read from it

    specialist: str = Field(None, min_length=1, description="A specialist's key.")
    action: str = Field(None, min_length=1, description="A tool's catalog key.")
    kind: LedgerEntry.Kind = Field(None, description="An entry kind.")
    date_from: date = Field(None, description="First day (YYYY-MM-DD).")
    date_to: date = Field(None, description="Last day (YYYY-MM-DD).")
    cursor: str = Field(None, pattern="^[0-9]{1,18}$", description="`next_cursor` of the previous page.")
    limit: int = Field(50, ge=1, le=MAX_PAGE, description="Entries per page.")


@endpoint(
    router,
    "GET",
    "/transactions",
    operation_id="transactions",
    summary="The ledger, newest first, a keyset page at a time",
    description=(
        "The Transactions list of Settings → Billing & Credits, with its filters. Dates are days in the "
        "workspace's time zone, both ends included."
    ),
    tag="Reading",
    response={200: (TransactionsPage, "A page of entries.")},
)
def transactions(request: HttpRequest, filters: Query[TransactionFilters]) -> HttpResponse:
    chosen = filters.model_dump(exclude_unset=True)
    # The page's form checks what the catalog and the calendar allow (a known specialist, an end after the start).
    form = LedgerFilterForm({name: str(chosen.get(name, "")) for name in LedgerFilterForm.base_fields})
    if not form.is_valid():
        field, messages = next(iter(form.errors.items()))
        raise ApiError(422, "invalid_request", " ".join(messages), field=field if field != "__all__" else None)
    workspace_id = request.api.workspace_id
    zone = Workspace.objects.only("time_zone").get(pk=workspace_id).zone
    cursor = int(filters.cursor) if filters.cursor is not None else None
    page = selectors.ledger_page(
        workspace_id=workspace_id, filters=form.filters(), zone=zone, before=cursor, limit=filters.limit
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


class CatalogPlan(Answer):
    key: str
    name: str
    price_cents: int = Field(description="Monthly, in US cents (per seat if per_seat).")
    allowance: Amount = Field(description="Monthly credits (per seat if per_seat).")
    per_seat: bool


class CatalogPack(Answer):
    key: str
    credits: Amount
    price_cents: int
    discount_percent: int = Field(description="Against the smallest pack's rate.")


class CatalogSpecialist(Answer):
    key: str
    label: str


class CatalogAction(Answer):
    key: str
    label: str
    description: str
    category: Literal["ai", "infrastructure"]
    specialist: str | None
    unit: Literal["token", "page", "call"]
    unit_price: Amount = Field(description="Per unit (per token for AI).")
    max_quantity: int


class Catalog(Answer):
    plans: list[CatalogPlan]
    packs: list[CatalogPack]
    specialists: list[CatalogSpecialist]
    actions: list[CatalogAction]


@endpoint(
    router,
    "GET",
    "/catalog",
    operation_id="catalog",
    summary="Plans, top-up packs, specialists and the priced actions",
    tag="Reading",
    workspace=False,
    response={200: (Catalog, "The price catalog.")},
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


def _lead_state(request: HttpRequest, lead: str, service: Callable[[int, str], LeadState]) -> HttpResponse:
    """Pause or resume ``lead`` with ``service``; answer its state."""
    state = service(request.api.workspace_id, lead)
    return json_response(
        {
            "lead": state.lead,
            "paused": state.paused,
            "replied_at": timestamp(state.replied_at),
            "resumed_at": timestamp(state.resumed_at),
        }
    )


@endpoint(
    router,
    "POST",
    "/replies",
    operation_id="reply_record",
    summary="A lead replied: pause its sequence",
    description="Its automated sequence steps (charges naming this `lead`) are refused with 409 `sequence_paused`.",
    tag="Reply detection",
    response={200: (LeadStateAnswer, "The lead's state.")},
)
def replies(request: HttpRequest, body: LeadRequest) -> HttpResponse:
    return _lead_state(request, body.lead, services.record_reply)


@endpoint(
    router,
    "POST",
    "/replies/resume",
    operation_id="reply_resume",
    summary="Resume a lead's sequence",
    description="Its sequence steps are charged again. The lead is in the body (leads may contain any character).",
    tag="Reply detection",
    response={200: (LeadStateAnswer, "The lead's state.")},
)
def replies_resume(request: HttpRequest, body: LeadRequest) -> HttpResponse:
    return _lead_state(request, body.lead, services.resume_lead)


# --- BYOK ----------------------------------------------------------------------------------------


class ByokKey(Answer):
    byok: bool = Field(description="Whether the workspace has its own Anthropic key.")
    api_key: str | None = Field(description="The decrypted key; null when none is set.")


@endpoint(
    router,
    "GET",
    "/byok-key",
    operation_id="byok_key",
    summary="The workspace's decrypted Anthropic key (service tokens only; every read is logged)",
    tag="BYOK",
    service_only=True,
    response={200: (ByokKey, "The key, or null.")},
)
def byok_key(request: HttpRequest) -> HttpResponse:
    workspace = Workspace.objects.get(pk=request.api.workspace_id)
    key = byok_key_read(caller=request.api.caller, workspace=workspace)
    return json_response({"byok": bool(key), "api_key": key or None})
