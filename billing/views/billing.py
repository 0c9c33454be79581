"""Settings → Billing & Credits: the page, its htmx regions, CSV export, purchases, checkout return, portal."""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Callable, Iterable
from datetime import date, tzinfo
from html import escape as html_escape
from typing import TypedDict
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse
from django.utils import timezone, translation
from django.utils.dates import MONTHS_3
from django.utils.functional import SimpleLazyObject
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import payment_history, selectors, services, stripe_gateway
from billing.bounds import id_parsed, whole_number
from billing.charts import usage_chart
from billing.credits import format_cents, format_credits, format_credits_short
from billing.csv_download import csv_download
from billing.errors import BillingError, InvalidRequest
from billing.forms import CapForm, LedgerFilterForm
from billing.links import link
from billing.models import LedgerEntry, Plan, TopUpPack, Workspace
from billing.views.access import workspace_view


def _today(workspace: Workspace) -> date:
    return timezone.now().astimezone(workspace.zone).date()


def _region_context(request: HttpRequest) -> dict:
    """What a region's template takes from the request: the CSRF token for its forms, made only if a form asks."""
    return {"request": request, "csrf_token": SimpleLazyObject(lambda: get_token(request))}


def _region(request: HttpRequest, partial: str, context: Callable[[], dict]) -> HttpResponse:
    """An htmx request gets the region alone; a plain one (no JS) the whole billing page."""
    if request.htmx and not request.htmx.boosted:
        # The region alone, rendered without the context processors: it names what it uses, and the
        # balance region is polled every few seconds by every open page.
        html = render_to_string(f"billing/settings_billing.html#{partial}", {**context(), **_region_context(request)})
        return HttpResponse(html)
    return render(request, "billing/settings_billing.html", _billing_context(request))


def _billing_context(request: HttpRequest) -> dict:
    workspace = request.workspace
    today = _today(workspace)
    # The usage region's read, the transactions' first page and the billing history, in one round trip.
    form_filters = _ledger_filters(request)
    usage, page, history = selectors.reads_run(
        selectors.usage_read(wallet=workspace.wallet, today=today),
        _transactions_read(request, form_filters[1]),
        _history_read(request),
    )
    # The usage read brings the caps, and today's spend per specialist when today is in the period.
    spent_today = usage.spent_today if usage.start <= today else None
    can_manage = request.membership.can_manage_billing
    caps = selectors.caps_overview(
        workspace_id=workspace.pk, today=today, spent_today=spent_today, daily_caps=usage.daily_caps
    )
    # One masked token for the whole page, the offers' cached forms included: the context processor
    # would mask a second one (each a 32-character random string) for the template's own forms.
    token = get_token(request)
    return {
        **_transactions_context(request, form_filters, page),
        **_cap_form_context(CapForm()),
        **_balance_context(request),
        **_usage_context(usage),
        **_history_context(request, history),
        "offers_markup": offers_markup(request, token),
        "csrf_token": token,
        "caps": cap_rows(caps),
        "can_manage": can_manage,
    }


def _usage_context(usage: selectors.UsageSummary) -> dict:
    return {"usage": usage, "panel": usage_panel(usage), "chart": usage_chart(usage)}


def _cap_form_context(form: CapForm) -> dict:
    return {"cap_form": form, "cap_controls": form.controls()}


def _ledger_filters(request: HttpRequest) -> tuple[LedgerFilterForm | None, selectors.LedgerFilters]:
    """The transaction filters in the query string; invalid ones filter nothing (the form shows why).

    No form when the query string names no filter (the first page, "load more" of it): nothing to validate.
    """
    if not any(name in request.GET for name in LedgerFilterForm.base_fields):
        return None, selectors.LedgerFilters()
    form = LedgerFilterForm(request.GET)
    return form, form.filters() if form.is_valid() else selectors.LedgerFilters()


def _transactions_read(request: HttpRequest, filters: selectors.LedgerFilters) -> selectors.Read[selectors.LedgerPage]:
    zone = timezone.get_current_timezone()
    return selectors.ledger_read(workspace_id=request.workspace.pk, filters=filters, zone=zone, before=_cursor(request))


def _transactions_context(
    request: HttpRequest,
    form_filters: tuple[LedgerFilterForm | None, selectors.LedgerFilters] | None = None,
    page: selectors.LedgerPage | None = None,
) -> dict:
    """The transactions region; ``form_filters`` and ``page`` when the page read them with other regions' data."""
    form, filters = form_filters or _ledger_filters(request)
    zone = timezone.get_current_timezone()
    if page is None:
        page = _transactions_read(request, filters).run()
    query = filters.as_query()
    return {
        "filter_form": form,
        "filter_controls": form.controls() if form else LedgerFilterForm.blank_controls(),
        "filters": filters,
        # Each named once though the links use them twice ("load more" repeats the filter form's).
        "tx_urls": {
            "page": link("billing:settings_billing"),
            "fragment": link("billing:transactions"),
            "csv": link("billing:transactions_csv"),
        },
        "query": urlencode(query),  # the export link's
        "more": urlencode({**query, "before": page.next_cursor}) if page.next_cursor else "",  # "load more"'s
        "page": page,
        "rows": transaction_rows(page.entries, zone),
    }


def _history_read(request: HttpRequest) -> selectors.Read[payment_history.BillingHistory]:
    """The billing history's page: the newest, or older than the purchase in ``history_before``."""
    return payment_history.billing_history_read(
        workspace_id=request.workspace.pk,
        zone=timezone.get_current_timezone(),
        before=id_parsed(request.GET.get("history_before")),
    )


def _history_context(request: HttpRequest, history: payment_history.BillingHistory | None = None) -> dict:
    """The billing history region: invoices and payments, and the payment method on file (no call to Stripe)."""
    if history is None:
        history = _history_read(request).run()
    return {
        "history": history,
        "history_urls": {"page": link("billing:settings_billing"), "fragment": link("billing:history")},
        "history_more": urlencode({"history_before": history.next_cursor}) if history.next_cursor else "",
        "payment_method": payment_history.payment_method_on_file(request.workspace, today=_today(request.workspace)),
        "can_manage": request.membership.can_manage_billing,
    }


# --- Display values: what the billing page's regions show, formatted once per request ----------


_MONTH_NAMES: dict[tuple[str | None, bool], dict[int, str]] = {}


def _month_names(*, escaped: bool = False) -> dict[int, str]:
    """ "Nov" by month number, as the date filter's ``M`` writes them: translated once per language."""
    key = (translation.get_language(), escaped)
    names = _MONTH_NAMES.get(key)
    if names is None:
        names = {n: str(MONTHS_3[n].title()) for n in MONTHS_3}
        names = _MONTH_NAMES[key] = {n: html_escape(name) for n, name in names.items()} if escaped else names
    return names


class BalanceCard(TypedDict):
    """The balance region's text, formatted and escaped once: a dict, so the template's lookups hit first time."""

    plan: SafeString  # "Pro · 3 seats"
    total: SafeString
    used: SafeString
    allowance: SafeString
    used_percent: SafeString
    plan_balance: SafeString
    topup_balance: SafeString
    renews_iso: SafeString
    renews: SafeString  # "Dec 5, 2026" on the reader's calendar
    level: SafeString  # "ok", "low" or "empty"
    reserved: SafeString  # by running jobs' holds; "" when none


def balance_card(balance: selectors.BalanceSummary, zone: tzinfo) -> BalanceCard:
    plan = balance.plan
    seats = f" · {balance.seats} seat{'' if balance.seats == 1 else 's'}" if plan.per_seat else ""
    renews = balance.period_end.astimezone(zone)
    return BalanceCard(
        plan=escape(f"{plan.name}{seats}"),
        total=_credits(balance.total),
        used=_credits(balance.used),
        allowance=_credits(balance.allowance),
        used_percent=SafeString(balance.used_percent),
        plan_balance=_credits(balance.plan_balance),
        topup_balance=_credits(balance.topup_balance),
        renews_iso=SafeString(renews.isoformat()),
        renews=escape(_day(renews, year=True)),
        level=SafeString(balance.level),
        reserved=_credits(balance.reserved) if balance.reserved else SafeString(""),
    )


def _day(day: date, *, year: bool = False) -> str:
    """ "Nov 5" (the date filter's "M j"), or "Nov 5, 2026"."""
    return f"{_month_names()[day.month]} {day.day}{f', {day.year}' if year else ''}"


def _quantity(quantity: int, unit: str) -> str:
    """ "1 call", "12,345 tokens": a tool's quantity in its unit (not escaped)."""
    return f"{quantity:,} {unit}{'' if quantity == 1 else 's'}"


def _credits(milli: int) -> SafeString:
    return SafeString(format_credits(milli))  # digits, separators and a sign: nothing to escape


def usage_panel(usage: selectors.UsageSummary) -> dict:
    """The usage region's dates, totals and the rows of its two tables, formatted once.

    The rows are written here, as the transactions' are: a dozen rows of three values cost the
    template language more than the rest of the region.
    """
    total = usage.total
    tools = "".join(
        f'<tr><td>{html_escape(tool.label)}</td><td class="num">'
        f"{html_escape(_quantity(tool.quantity, tool.unit))}</td>"
        f'<td class="num">{format_credits(tool.credits)}</td></tr>\n'
        for tool in usage.tools
    )
    specialists = "".join(
        f'<tr><td>{html_escape(label)}</td><td class="num">{format_credits(amount)}</td>'
        f'<td class="num">{round(amount * 100 / total) if total else 0}%</td></tr>\n'
        for label, amount in usage.specialists
    )
    return {
        "start": _day(usage.start),
        "end": _day(usage.end),
        "total": _credits(total),
        "byok_saved": _credits(usage.byok_saved),
        "followups_skipped": str(usage.followups_skipped),
        "reply_saved": _credits(usage.reply_saved),
        "forecast": forecast(usage),
        "tool_rows": mark_safe(tools),  # labels escaped, numbers formatted above
        "specialist_rows": mark_safe(specialists),
    }


def forecast(usage: selectors.UsageSummary) -> SafeString:
    """At this period's pace: the day the plan bucket runs out, and how far the top-up credits carry on."""
    if not usage.total:
        return SafeString("No usage yet this period.")
    plan_ends, total_ends, today = usage.runs_out_on, usage.total_runs_out_on, usage.today
    if usage.plan_balance <= 0:
        text = "Your plan bucket is used up"
        if not usage.topup_balance:
            text += " and there are no top-up credits left"
        elif total_ends is None:
            text += f"; at this pace your top-up credits last well past its renewal on {escape(_day(usage.end))}"
        elif total_ends <= today:
            text += ", and at this pace your top-up credits run out <strong>today</strong>"
        else:
            text += (
                f"; at this pace your top-up credits last until <strong>{escape(_day(total_ends, year=True))}</strong>"
            )
        return SafeString(f"{text}.")  # the dates escaped, the rest written here
    if plan_ends is None or plan_ends >= usage.end:
        return SafeString(f"At this pace your plan bucket lasts until it renews on {escape(_day(usage.end))}.")
    when = "<strong>today</strong>" if plan_ends <= today else f"on <strong>{escape(_day(plan_ends))}</strong>"
    text = f"At this pace your plan bucket runs out {when}"
    if not usage.topup_balance:
        text += ", and you have no top-up credits to carry on with"
    elif total_ends is None:
        text += "; your top-up credits then last well beyond it"
    elif total_ends > plan_ends:
        text += f", and your top-up credits last until {escape(_day(total_ends, year=True))}"
    else:
        text += "; your top-up credits would not last another day"
    return SafeString(f"{text}.")


def cap_rows(caps: list[selectors.CapRow]) -> SafeString:
    """The daily caps table's rows: each specialist's spend today against its cap, with a meter."""
    rows = []
    for cap in caps:
        label, spent = html_escape(cap.label), format_credits(cap.spent_today)
        if cap.daily_cap is None:
            limit, meter = '<span class="muted">no cap</span>', ""
        else:
            percent = cap.percent
            level = "level-empty" if percent >= 100 else "level-low" if percent >= 80 else ""
            limit = format_credits(cap.daily_cap)
            meter = (
                f'<div class="meter thin" role="meter" aria-label="{label} cap used" aria-valuemin="0"'
                f' aria-valuemax="100" aria-valuenow="{percent}"><div class="meter-fill {level}"'
                f' style="width: {percent}%"></div></div>'
            )
        rows.append(
            f'<tr data-specialist="{html_escape(cap.specialist)}"><td>{label}</td><td class="num">{spent}</td>'
            f'<td class="num">{limit}</td><td>{meter}</td></tr>\n'
        )
    return mark_safe("".join(rows))  # names escaped, numbers formatted above


# The offers region is the same markup for everyone who sees the same catalog snapshot, plan,
# seats, subscription state and right to buy, but for its forms' CSRF token. So it is rendered
# once per such combination, with a slot where the token goes, and each request puts its own
# token in: the template language costs more for these eight cards than any other region.
_CSRF_SLOT = f"csrf-slot-{secrets.token_hex(16)}"  # unguessable: no catalog text can contain it
_OFFERS_VARIANTS = 512  # a bound on the combinations kept (seat counts are the open-ended part)
_offers_markup: tuple[selectors.Offers, dict[tuple, str]] | None = None  # (offers, markup by combination)


def offers_markup(request: HttpRequest, token: str) -> SafeString:
    """The Top up or upgrade region for this reader: from the cache, with this request's CSRF ``token``."""
    global _offers_markup
    offers = selectors.offers()  # a new object with each catalog snapshot: the markup made of the last one goes
    cached = _offers_markup
    if cached is None or cached[0] is not offers:
        cached = _offers_markup = (offers, {})
    workspace, can_manage = request.workspace, request.membership.can_manage_billing
    subscribed = getattr(workspace, "live_subscription", None) is not None
    key = (workspace.plan_id, subscribed, workspace.seats, can_manage, translation.get_language(), get_script_prefix())
    markup = cached[1].get(key)
    if markup is None:
        if len(cached[1]) >= _OFFERS_VARIANTS:
            cached[1].clear()
        context = {"offers": offer_cards(offers, workspace, can_manage), "can_manage": can_manage}
        markup = render_to_string("billing/settings_billing.html#offers", {**context, "csrf_token": _CSRF_SLOT})
        cached[1][key] = markup
    return SafeString(markup.replace(_CSRF_SLOT, token))  # the token is letters and digits


def offer_cards(offers: selectors.Offers, workspace: Workspace, can_manage: bool) -> dict:
    """The top-up packs and plan cards with their prices and buttons, formatted once."""
    current = workspace.plan
    subscription = getattr(workspace, "live_subscription", None)
    return {
        "subscribed": subscription is not None,
        "seats": workspace.seats,
        "packs": [
            {
                "key": offer.pack.key,
                "size": format_credits_short(offer.pack.amount),
                "price": format_cents(offer.pack.price_cents),
                "discount": offer.discount_percent,
            }
            for offer in offers.packs
        ],
        "plans": [
            {
                "key": plan.key,
                "name": plan.name,
                "current": plan.pk == current.pk,
                "price": "$0" if plan.is_free else format_cents(plan.price_cents),
                "per_seat": plan.per_seat,
                "is_free": plan.is_free,
                "allowance": format_credits_short(plan.allowance),
                # Free is reached by cancelling in the portal, never bought.
                "can_switch": can_manage and plan.pk != current.pk and not plan.is_free,
            }
            for plan in offers.plans
        ],
    }


# The transactions rows are built here rather than in the template: a page is 25 rows of a dozen
# values, which the template language renders one lookup, escape and localisation at a time,
# several times slower. Every value in them is escaped here or is a number formatted here.
_KIND_NAMES = {kind: escape(label) for kind, label in LedgerEntry.Kind.choices}


def transaction_rows(entries: Iterable[selectors.LedgerRow], zone: tzinfo) -> SafeString:
    """The entries as rows of the transactions table, on the reader's clock."""
    escaped: dict[str, str] = {}  # the few names a page repeats, escaped once

    def name(text: str) -> str:
        found = escaped.get(text)
        if found is None:
            found = escaped[text] = html_escape(text)  # what django.utils.html.escape does, unwrapped
        return found

    months = _month_names(escaped=True)
    rows = []
    for entry in entries:
        local = entry.created_at.astimezone(zone)
        tool, quantity, amount = entry.tool, entry.quantity, entry.amount
        if tool:  # usage: the tool, and whether the workspace's own key paid for it
            what = name(tool.label) + (' <span class="badge">BYOK</span>' if entry.byok else "")
        else:  # a top-up, grant, refund or adjustment, with its reason and the purchase's receipt
            what = f"<strong>{_KIND_NAMES.get(entry.kind) or name(entry.kind)}</strong>"
            what += f' <span class="muted">{html_escape(entry.reason)}</span>' if entry.reason else ""
            if entry.receipt_url.startswith(("https://", "http://")):
                what += f' <a href="{html_escape(entry.receipt_url)}">Receipt</a>'
        used = name(_quantity(quantity, tool.unit if tool else "")) if quantity else ""
        when = f"{months[local.month]} {local.day}, {local.hour:02d}:{local.minute:02d}"
        listed = entry.list_amount if entry.byok else None
        listed = "" if listed is None else f' <span class="muted small">(list {format_credits(listed)})</span>'
        rows.append(
            f'<tr data-entry="{entry.pk}">'
            f'<td><time datetime="{local.isoformat()}">{when}</time></td>'
            f"<td>{name(entry.specialist) if entry.specialist else '—'}</td>"
            f"<td>{what}</td>"
            f'<td class="num">{used}</td>'
            f'<td class="num{" credit" if amount > 0 else ""}">{format_credits(amount, signed=True)}{listed}</td>'
            f"<td>{_BUCKETS[bool(entry.plan_delta), bool(entry.topup_delta)]}</td>"
            f'<td class="num">{format_credits(entry.plan_balance_after + entry.topup_balance_after)}</td>'
            "</tr>\n"
        )
    return mark_safe("".join(rows))  # escaped and formatted above


# Which bucket(s) an entry moved, by (plan moved, top-up moved).
_BUCKETS = {(True, True): "Plan + top-up", (True, False): "Plan", (False, True): "Top-up", (False, False): "—"}


def _cursor(request: HttpRequest) -> int | None:
    """ "Load more"'s keyset cursor: an entry id, or None (the first page) for anything else."""
    return id_parsed(request.GET.get("before"))


@require_GET
@workspace_view()
def settings_billing(request: HttpRequest) -> HttpResponse:
    return render(request, "billing/settings_billing.html", _billing_context(request))


def _balance_context(request: HttpRequest) -> dict:
    balance = selectors.balance_of(request.workspace.wallet)
    zone = timezone.get_current_timezone()
    return {
        "balance": balance,
        "card": balance_card(balance, zone),
        "money": money_notices(request.workspace, request.workspace.wallet, zone),
    }


def money_notices(workspace: Workspace, wallet, zone: tzinfo) -> dict:
    """What the balance region says about payments and limits: all read with the membership, no query."""
    subscription = getattr(workspace, "live_subscription", None)
    notices: dict = {"past_due": False, "subscription": "", "processing": wallet.payments_processing, "budget": None}
    if subscription is not None:
        notices["past_due"] = subscription.past_due_since is not None
        end = _day(subscription.current_period_end.astimezone(zone), year=True)
        if subscription.cancel_at_period_end:
            notices["subscription"] = f"Cancelled: back to Free on {end}."
        elif (subscription.plan_id, subscription.seats) != (workspace.plan_id, workspace.seats):
            plan = subscription.plan  # read only here: a downgrade waiting for the period to end is rare
            seats = f" × {subscription.seats} seats" if plan.per_seat and subscription.seats > 1 else ""
            notices["subscription"] = f"Changes to {plan.name}{seats} on {end}."
    if workspace.monthly_budget is not None:
        budget = workspace.monthly_budget
        notices["budget"] = {
            "spent": format_credits(wallet.period_spend),
            "limit": format_credits(budget),
            "percent": min(100, wallet.period_spend * 100 // budget) if budget else 100,
            "reached": wallet.period_spend >= budget,
        }
    return notices


def _balance_etag(request: HttpRequest) -> str:
    """What the balance region shows depends on: the wallet's revision moves with every balance change.

    The rest of what it shows moves without the wallet: a hold expiring (what is reserved), the
    subscription (past due, a cancellation or a change scheduled), the plan and seats, the
    budget, the reader's role and clock. They are all read with the membership, so the tag
    costs no query; a change to any of them answers 200 with the new region, never a stale 304.
    """
    workspace, wallet = request.workspace, request.workspace.wallet
    subscription = getattr(workspace, "live_subscription", None)
    state = (
        wallet.reserved_at(timezone.now()) if wallet.holds else 0,
        workspace.plan_id,
        workspace.seats,
        workspace.monthly_budget,
        request.membership.role,
        timezone.get_current_timezone_name(),
        subscription
        and (
            subscription.plan_id,
            subscription.seats,
            subscription.past_due_since,
            subscription.cancel_at_period_end,
            subscription.current_period_end,
        ),
    )
    return f'"balance-{workspace.pk}-{wallet.revision}-{zlib.crc32(repr(state).encode()):08x}"'


@require_GET
@workspace_view()
def balance_fragment(request: HttpRequest) -> HttpResponse:
    """Polled every few seconds: an unchanged wallet costs one indexed read and a 304."""
    etag = _balance_etag(request)
    if etag in request.META.get("HTTP_IF_NONE_MATCH", ""):
        response = HttpResponseNotModified()
    else:
        response = _region(
            request,
            "balance",
            lambda: {**_balance_context(request), "can_manage": request.membership.can_manage_billing},
        )
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


@require_GET
@workspace_view()
def transactions_fragment(request: HttpRequest) -> HttpResponse:
    # "Load more" appends rows to the table; a filter change replaces the whole region.
    partial = "transaction-rows" if request.GET.get("before") else "transactions"
    return _region(request, partial, lambda: _transactions_context(request))


CSV_COLUMNS = [
    "id", "time", "kind", "specialist", "tool", "quantity", "unit", "credits", "plan bucket", "top-up",
    "plan balance after", "top-up balance after", "byok", "list credits", "lead", "reason", "idempotency key",
    "external ref",
]  # fmt: skip


def _csv_row(entry: selectors.LedgerRow, zone) -> list[str]:
    tool = entry.tool
    return [
        str(entry.pk),
        entry.created_at.astimezone(zone).isoformat(timespec="seconds"),
        entry.kind,
        entry.specialist,
        tool.key if tool else "",
        "" if entry.quantity is None else str(entry.quantity),
        tool.unit if tool else "",
        format_credits(entry.amount, signed=True, grouped=False),
        format_credits(entry.plan_delta, signed=True, grouped=False),
        format_credits(entry.topup_delta, signed=True, grouped=False),
        format_credits(entry.plan_balance_after, grouped=False),
        format_credits(entry.topup_balance_after, grouped=False),
        "yes" if entry.byok else "",
        "" if entry.list_amount is None else format_credits(entry.list_amount, grouped=False),
        entry.lead,
        entry.reason,
        entry.idempotency_key,
        entry.external_ref,
    ]


@require_GET
@workspace_view()
def transactions_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The filtered list as CSV, streamed a keyset chunk at a time (flat memory at any size).

    Invalid filters refuse the export with the page and the filter's errors: exporting everything
    instead would hand over what the reader did not ask for.
    """
    form, filters = _ledger_filters(request)
    if form is not None and form.errors:
        return render(request, "billing/settings_billing.html", _billing_context(request), status=422)
    zone = timezone.get_current_timezone()
    entries = selectors.ledger_export(workspace_id=request.workspace.pk, filters=filters, zone=zone)
    name = f"sigora-transactions-{request.workspace.pk}-{timezone.now():%Y%m%d}.csv"
    return csv_download(CSV_COLUMNS, (_csv_row(entry, zone) for entry in entries), name)


@require_GET
@workspace_view()
def usage_fragment(request: HttpRequest) -> HttpResponse:
    def context() -> dict:
        return _usage_context(selectors.usage_summary(wallet=request.workspace.wallet, today=_today(request.workspace)))

    return _region(request, "usage", context)


@require_http_methods(["GET", "POST"])
@workspace_view()
def caps_fragment(request: HttpRequest) -> HttpResponse:
    form = CapForm(request.POST or None)
    saved = False
    if request.method == "POST":
        if not request.membership.can_manage_billing:
            raise PermissionDenied("Only the workspace's owners and admins can change caps.")
        if form.is_valid():
            services.cap_set(
                workspace=request.workspace,
                specialist=form.cleaned_data["specialist"],
                daily_cap=form.cleaned_data["daily_cap"],
                actor=request.user,
            )
            if not request.htmx:
                messages.success(request, "Daily cap saved.")
                return redirect(reverse("billing:settings_billing") + "#caps")
            form = CapForm()
            saved = True
    if request.method == "POST" and form.errors and not request.htmx:
        context = {**_billing_context(request), **_cap_form_context(form)}
        return render(request, "billing/settings_billing.html", context, status=422)
    response = _region(
        request,
        "caps",
        lambda: {
            "caps": cap_rows(
                selectors.caps_overview(workspace_id=request.workspace.pk, today=_today(request.workspace))
            ),
            **_cap_form_context(form),
            "cap_saved": saved,
            "can_manage": request.membership.can_manage_billing,
        },
    )
    if request.method == "POST" and form.errors:
        response.status_code = 422
    return response


def _leave_for(request: HttpRequest, url: str) -> HttpResponse:
    """Send the browser to Stripe (or the offline double): a full navigation, also from htmx."""
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    response = redirect(url)
    response.status_code = 303  # See Other: the POST is done, GET the checkout page
    return response


@require_POST
@workspace_view(manage=True)
def purchase(request: HttpRequest, kind: str, key: str) -> HttpResponse:
    """Top-up and plan buttons: off to Stripe Checkout (or the Billing Portal for an existing subscription)."""
    if kind == "top-up":
        item = get_object_or_404(TopUpPack, key=key, is_active=True)
    elif kind == "upgrade":
        item = get_object_or_404(Plan, key=key, is_active=True)
    else:
        raise Http404("Unknown purchase.")
    if not stripe_gateway.is_configured():
        return render(request, "billing/payments_unavailable.html", {"item": item, "kind": kind})
    workspace = request.workspace
    back = request.build_absolute_uri(reverse("billing:settings_billing"))
    return_url = request.build_absolute_uri(reverse("billing:checkout_return"))
    try:
        if kind == "top-up":
            _, url = services.topup_checkout_start(
                workspace=workspace, pack_key=key, user=request.user, return_url=return_url, cancel_url=back
            )
        elif selectors.subscription_of(workspace_id=workspace.pk) is not None:
            # A running subscription changes in Stripe's portal, which prorates: on the confirm page of this plan.
            raw_seats = request.POST.get("seats")
            url = services.portal_start(
                workspace=workspace,
                return_url=back,
                plan_key=key,
                seats=None if raw_seats in (None, "") else _seats(raw_seats, default=workspace.seats),
            )
        else:
            _, url = services.plan_checkout_start(
                workspace=workspace,
                plan_key=key,
                seats=_seats(request.POST.get("seats"), default=workspace.seats),
                user=request.user,
                return_url=return_url,
                cancel_url=back,
            )
    except BillingError as exc:
        messages.error(request, exc.message)
        return redirect("billing:settings_billing")
    return _leave_for(request, url)


def _seats(raw: str | None, *, default: int) -> int:
    if raw in (None, ""):
        return default
    seats = whole_number(raw.strip())
    return 0 if seats is None else seats  # the service names what is wrong with it


@require_GET
@workspace_view()
def checkout_return(request: HttpRequest) -> HttpResponse:
    """Back from Checkout: fulfil now if Stripe says it is paid, and say where the payment stands."""
    try:
        purchase = services.checkout_return(workspace=request.workspace, session_id=request.GET.get("session_id", ""))
    except InvalidRequest:
        raise Http404("No such checkout in this workspace.") from None
    except BillingError as exc:
        messages.warning(request, f"Your payment is being confirmed ({exc.message}). Credits appear once it is.")
        return redirect("billing:settings_billing")
    if purchase.status == purchase.Status.PAID:
        if purchase.kind == purchase.Kind.SUBSCRIPTION:
            messages.success(request, f"Welcome to {purchase.plan.name}: your plan credits are in your bucket.")
        else:
            messages.success(request, f"Payment received: {format_credits(purchase.credits)} credits added.")
    elif purchase.status in (purchase.Status.PENDING, purchase.Status.PROCESSING):
        messages.info(request, "Payment processing: your credits appear here as soon as Stripe confirms it.")
    else:
        messages.error(request, "That payment did not go through; nothing was charged.")
    return redirect("billing:settings_billing")


@require_GET
@workspace_view()
def history_fragment(request: HttpRequest) -> HttpResponse:
    # "Older payments" appends rows to the table; otherwise the whole region (a payment clearing refreshes it).
    partial = "history-rows" if id_parsed(request.GET.get("history_before")) is not None else "history"
    return _region(request, partial, lambda: _history_context(request))


@require_POST
@workspace_view(manage=True)
def billing_portal(request: HttpRequest) -> HttpResponse:
    """Stripe's Billing Portal: card, plan, seats, cancellation."""
    if not stripe_gateway.is_configured():
        return render(request, "billing/payments_unavailable.html", {"item": None, "kind": "portal"})
    try:
        url = services.portal_start(
            workspace=request.workspace, return_url=request.build_absolute_uri(reverse("billing:settings_billing"))
        )
    except BillingError as exc:
        messages.error(request, exc.message)
        return redirect("billing:settings_billing")
    return _leave_for(request, url)
