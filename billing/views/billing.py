"""Settings → Billing & Credits: the page, its htmx regions, CSV export, purchases, checkout return, portal.

The views hand the template plain data (the selectors' dataclasses, dicts of values); every piece
of markup is in templates/billing/settings_billing.html, one partial per region.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import selectors, services, stripe_gateway
from billing.bounds import id_parsed, whole_number
from billing.charts import usage_chart
from billing.credits import format_credits
from billing.csv_download import csv_download
from billing.errors import BillingError, InvalidRequest
from billing.forms import CapForm, LedgerFilterForm
from billing.models import FreeCredits, Membership, Plan, TopUpPack, Workspace
from billing.views.access import workspace_view

TEMPLATE = "billing/settings_billing.html"


def _today(workspace: Workspace) -> date:
    return timezone.now().astimezone(workspace.zone).date()


def _region(request: HttpRequest, partial: str, context: Callable[[], dict]) -> HttpResponse:
    """An htmx request gets the region alone; a plain one (no JS) the whole billing page."""
    if request.htmx and not request.htmx.boosted:
        # The region alone, rendered without the context processors: it names what it uses (the
        # balance region is polled every 4 s by every open page), the CSRF token made only if a form asks.
        csrf_token = SimpleLazyObject(lambda: get_token(request))
        html = render_to_string(f"{TEMPLATE}#{partial}", {**context(), "request": request, "csrf_token": csrf_token})
        return HttpResponse(html)
    return render(request, TEMPLATE, _billing_context(request))


def _billing_context(request: HttpRequest) -> dict:
    workspace = request.workspace
    today = _today(workspace)
    # The usage region's read, the transactions' first page, the billing history and the advisor's usage, in one
    # round trip.
    form = _filter_form(request)
    usage, page, history, window = selectors.reads_run(
        selectors.usage_read(wallet=workspace.wallet, today=today),
        _transactions_read(request, form),
        _history_read(request),
        selectors.advisor_read(workspace=workspace, today=today),
    )
    # The usage read brings the caps, and today's spend per specialist when today is in the period.
    spent_today = usage.spent_today if usage.start <= today else None
    caps = selectors.caps_overview(
        workspace_id=workspace.pk, today=today, spent_today=spent_today, daily_caps=usage.daily_caps
    )
    offers = selectors.offers()
    can_manage = request.membership.can_manage_billing
    advice = selectors.plan_advice(
        window=window,
        plans=offers.plans,
        packs=[offer.pack for offer in offers.packs],
        current=workspace.plan,
        seats=workspace.seats,
    )
    return {
        **_transactions_context(request, form, page),
        **_balance_context(request),
        **_usage_context(usage),
        **_history_context(request, history),
        "advice": advice,
        "advice_actions": advice_actions(advice, workspace, can_manage),
        "offers": offer_cards(offers, workspace, can_manage),
        "caps": caps,
        "cap_form": CapForm(),
        "can_manage": request.membership.can_manage_billing,
    }


@require_GET
@workspace_view()
def settings_billing(request: HttpRequest) -> HttpResponse:
    return render(request, TEMPLATE, _billing_context(request))


# --- Balance ------------------------------------------------------------------------------------


def _balance_context(request: HttpRequest) -> dict:
    workspace = request.workspace
    return {
        "balance": selectors.balance_of(workspace.wallet),
        "balance_etag": _balance_etag(request),  # the poll asks with it (If-None-Match)
        "balance_poll": settings.BALANCE_POLL_SECONDS,
        "money": money_notices(workspace, workspace.wallet),
        "can_manage": request.membership.can_manage_billing,
        "is_owner": request.membership.role == Membership.Role.OWNER,  # verification mail goes to the owner
    }


def money_notices(workspace: Workspace, wallet) -> dict:
    """What the balance region says about payments and limits: all read with the membership, no query."""
    subscription = getattr(workspace, "live_subscription", None)
    notices: dict = {"past_due": False, "change": None, "processing": wallet.payments_processing, "budget": None}
    if subscription is not None:
        notices["past_due"] = subscription.past_due_since is not None
        if subscription.cancel_at_period_end:
            notices["change"] = {"cancelled": True, "on": subscription.current_period_end}
        elif (subscription.plan_id, subscription.seats) != (workspace.plan_id, workspace.seats):
            plan = subscription.plan  # read only here: a downgrade waiting for the period to end is rare
            notices["change"] = {
                "cancelled": False,
                "on": subscription.current_period_end,
                "plan": plan.name,
                "seats": subscription.seats if plan.per_seat and subscription.seats > 1 else None,
            }
    notices["verify"] = verification_notice(workspace)
    if workspace.monthly_budget is not None:
        budget = workspace.monthly_budget
        notices["budget"] = {
            "spent": wallet.period_spend,
            "limit": budget,
            "percent": min(100, wallet.period_spend * 100 // budget) if budget else 100,
            "reached": wallet.period_spend >= budget,
        }
    return notices


def verification_notice(workspace: Workspace) -> dict | None:
    """The banner of a workspace waiting for its owner's email verification (issue 18), or None."""
    if not workspace.unverified and workspace.free_credits != FreeCredits.AWAITING:
        return None
    return {
        "locked": workspace.unverified,  # charges refused until then (not once it paid for credits)
        "free_credits": workspace.plan.allowance_for(workspace.seats) if workspace.plan.is_free else None,
    }


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
        workspace.unverified,  # verifying may grant nothing (the address had its grant): no new revision then
        workspace.free_credits,
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


# The event a changed balance fires in the page (an htmx HX-Trigger): the regions that move with
# the wallet (usage, transactions) listen for it and refresh themselves, so they ask nothing while it stands still.
BALANCE_CHANGED = "balance-changed"


@require_GET
@workspace_view()
def balance_fragment(request: HttpRequest) -> HttpResponse:
    """Polled every few seconds: an unchanged wallet costs one indexed read and a 304.

    The region sends the ETag it shows; the browser's cache is not asked (a request naming its own
    validator bypasses it), so htmx sees the 304 itself, swaps nothing and fires nothing. A new
    tag answers the region and, to a page that showed an older one, the balance-changed event.
    """
    etag = _balance_etag(request)
    shown = request.META.get("HTTP_IF_NONE_MATCH", "")
    if etag in shown:
        response = HttpResponseNotModified()
    else:
        response = _region(request, "balance", lambda: _balance_context(request))
        if shown:
            response["HX-Trigger"] = BALANCE_CHANGED
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


# --- Usage this period --------------------------------------------------------------------------


@dataclass(frozen=True)
class Forecast:
    """Where this period's pace leads, as the usage region says it.

    ``plan``: "unused" (no usage yet), "used_up", "lasts" (until the renewal), "today" or "runs_out"
    (on ``plan_ends``). ``topup``, how the top-up credits carry on after the bucket: "none" (there
    are none), "beyond" (past the forecast's horizon), "today", "until" (``topup_ends``) or
    "not_a_day" (they would not last another day).
    """

    plan: str
    topup: str
    renews: date
    plan_ends: date | None = None
    topup_ends: date | None = None


def forecast(usage: selectors.UsageSummary) -> Forecast:
    """At this period's pace: the day the plan bucket runs out, and how far the top-up credits carry on."""
    plan_ends, total_ends, today, renews = usage.runs_out_on, usage.total_runs_out_on, usage.today, usage.end
    if not usage.total:
        return Forecast("unused", "none", renews)
    if usage.plan_balance <= 0:
        if not usage.topup_balance:
            topup = "none"
        elif total_ends is None:
            topup = "beyond"
        else:
            topup = "today" if total_ends <= today else "until"
        return Forecast("used_up", topup, renews, topup_ends=total_ends)
    if plan_ends is None or plan_ends >= usage.end:
        return Forecast("lasts", "none", renews)
    if not usage.topup_balance:
        topup = "none"
    elif total_ends is None:
        topup = "beyond"
    else:
        topup = "until" if total_ends > plan_ends else "not_a_day"
    return Forecast("today" if plan_ends <= today else "runs_out", topup, renews, plan_ends, total_ends)


def _usage_context(usage: selectors.UsageSummary) -> dict:
    return {"usage": usage, "forecast": forecast(usage), "chart": usage_chart(usage)}


@require_GET
@workspace_view()
def usage_fragment(request: HttpRequest) -> HttpResponse:
    def context() -> dict:
        return _usage_context(selectors.usage_summary(wallet=request.workspace.wallet, today=_today(request.workspace)))

    return _region(request, "usage", context)


# --- Recent transactions ------------------------------------------------------------------------


def _filter_form(request: HttpRequest) -> LedgerFilterForm:
    """The transaction filters in the query string; unbound when it names none (the first page, its "load more")."""
    named = any(name in request.GET for name in LedgerFilterForm.base_fields)
    return LedgerFilterForm(request.GET if named else None)


def _filters(form: LedgerFilterForm) -> selectors.LedgerFilters:
    """What ``form`` filters by; invalid filters filter nothing (the form shows why)."""
    return form.filters() if form.is_bound and form.is_valid() else selectors.LedgerFilters()


def _cursor(request: HttpRequest) -> int | None:
    """ "Load more"'s keyset cursor: an entry id, or None (the first page) for anything else."""
    return id_parsed(request.GET.get("before"))


def _transactions_read(
    request: HttpRequest, form: LedgerFilterForm, *, after: int | None = None
) -> selectors.Read[selectors.LedgerPage]:
    zone = timezone.get_current_timezone()
    return selectors.ledger_read(
        workspace_id=request.workspace.pk, filters=_filters(form), zone=zone, before=_cursor(request), after=after
    )


def _transactions_context(
    request: HttpRequest, form: LedgerFilterForm | None = None, page: selectors.LedgerPage | None = None
) -> dict:
    """The transactions region; ``form`` and ``page`` when the page read them with other regions' data."""
    form = form or _filter_form(request)
    if page is None:
        page = _transactions_read(request, form).run()
    query = _filters(form).as_query()
    return {
        "filter_form": form,
        "query": urlencode(query),  # the export link's
        "more": urlencode({**query, "before": page.next_cursor}) if page.next_cursor else "",  # "load more"'s
        "news": _news_query(query, page.entries),
        "page": page,
    }


def _news_query(query: dict[str, str], entries: list[selectors.LedgerRow], since: int = 0) -> str:
    """What the list asks when the balance moves: its filters, and the newest entry it holds (0: none)."""
    return urlencode({**query, "since": max([since, *(entry.pk for entry in entries)])})


@require_GET
@workspace_view()
def transactions_fragment(request: HttpRequest) -> HttpResponse:
    # "Load more" appends rows to the table; new entries go on top of those shown; a filter
    # change replaces the whole region.
    if request.GET.get("before"):
        return _region(request, "transaction-rows", lambda: _transactions_context(request))
    if "since" in request.GET and request.htmx:
        return _transactions_news(request)
    return _region(request, "transactions", lambda: _transactions_context(request))


def _transactions_news(request: HttpRequest) -> HttpResponse:
    """The entries written since the list's newest (the balance moved), to go on top of the rows it holds.

    The rows already loaded stay as they are: however many pages "Load more" brought, where the
    reader had scrolled to, and the filters, which the list's own query names. When the list held
    nothing (its "no transactions" row must go) or more arrived than a page, the region is drawn
    again from its newest page instead.
    """
    form = _filter_form(request)
    since = id_parsed(request.GET.get("since"))
    page = _transactions_read(request, form, after=since).run()
    if page.entries and (since is None or page.next_cursor is not None):
        response = _region(request, "transactions", lambda: _transactions_context(request, form, page))
        response["HX-Retarget"] = "#transactions"
        response["HX-Reswap"] = "outerHTML"
        return response
    query = _filters(form).as_query()
    return _region(
        request,
        "transaction-news",
        lambda: {"news": _news_query(query, page.entries, since or 0), "news_page": page, "more": ""},
    )


# The customer's export names things as the page does (kinds and tools by their labels) and says
# each amount's unit. Amounts are credits, exact to the thousandth as on the page, without
# thousands separators so a spreadsheet reads them as numbers.
CSV_COLUMNS = [
    "ID", "Time", "Kind", "Specialist", "Tool", "Quantity", "Unit", "Credits", "Plan bucket (credits)",
    "Top-up (credits)", "Plan balance after (credits)", "Top-up balance after (credits)", "BYOK",
    "List price (credits)", "Lead", "Description", "Idempotency key", "Payment reference",
]  # fmt: skip


def _csv_row(entry: selectors.LedgerRow, zone) -> list[str]:
    tool = entry.tool
    return [
        str(entry.pk),
        entry.created_at.astimezone(zone).isoformat(timespec="seconds"),
        entry.kind_label,
        entry.specialist,
        tool.label if tool else "",
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
    form = _filter_form(request)
    if form.is_bound and form.errors:
        return render(request, TEMPLATE, _billing_context(request), status=422)
    zone = timezone.get_current_timezone()
    entries = selectors.ledger_export(workspace_id=request.workspace.pk, filters=_filters(form), zone=zone)
    name = f"sigora-transactions-{request.workspace.pk}-{timezone.now():%Y%m%d}.csv"
    return csv_download(CSV_COLUMNS, (_csv_row(entry, zone) for entry in entries), name)


# --- Billing history ----------------------------------------------------------------------------


def _history_read(request: HttpRequest) -> selectors.Read[selectors.BillingHistory]:
    """The billing history's page: the newest, or older than the purchase in ``history_before``."""
    return selectors.billing_history_read(
        workspace_id=request.workspace.pk,
        zone=timezone.get_current_timezone(),
        before=id_parsed(request.GET.get("history_before")),
    )


def _history_context(request: HttpRequest, history: selectors.BillingHistory | None = None) -> dict:
    """The billing history region: invoices and payments, and the payment method on file (no call to Stripe)."""
    if history is None:
        history = _history_read(request).run()
    return {
        "history": history,
        "history_more": urlencode({"history_before": history.next_cursor}) if history.next_cursor else "",
        "payment_method": selectors.payment_method_on_file(request.workspace, today=_today(request.workspace)),
        "can_manage": request.membership.can_manage_billing,
    }


@require_GET
@workspace_view()
def history_fragment(request: HttpRequest) -> HttpResponse:
    # "Older payments" appends rows to the table; otherwise the whole region (a payment clearing refreshes it).
    partial = "history-rows" if id_parsed(request.GET.get("history_before")) is not None else "history"
    return _region(request, partial, lambda: _history_context(request))


# --- Daily caps ---------------------------------------------------------------------------------


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
        return render(request, TEMPLATE, {**_billing_context(request), "cap_form": form}, status=422)
    response = _region(
        request,
        "caps",
        lambda: {
            "caps": selectors.caps_overview(workspace_id=request.workspace.pk, today=_today(request.workspace)),
            "cap_form": form,
            "cap_saved": saved,
            "can_manage": request.membership.can_manage_billing,
        },
    )
    if request.method == "POST" and form.errors:
        response.status_code = 422
    return response


# --- The plan advisor ---------------------------------------------------------------------------


def advice_actions(advice: selectors.Advice, workspace: Workspace, can_manage: bool) -> dict | None:
    """The advice's buttons, each through a flow that exists, for those who may buy; None for the others.

    ``plan``: "switch" (the plan's checkout, or the portal's confirmation for a subscription), "cancel"
    (Free is reached by cancelling in the portal) or None (the plan stays, or a paid plan without a
    subscription, which falls back to Free at its renewal by itself); the packs are the top-up checkout's.
    """
    if not (can_manage and advice.enough):
        return None
    subscribed = getattr(workspace, "live_subscription", None) is not None
    plan = None
    if advice.changes_plan:
        if not advice.best.plan.is_free:
            plan = "switch"
        elif subscribed:
            plan = "cancel"
    if plan is None and not advice.best.packs:
        return None
    return {"plan": plan, "subscribed": subscribed}


# --- Top up or upgrade, and off to Stripe -------------------------------------------------------


def offer_cards(offers: selectors.Offers, workspace: Workspace, can_manage: bool) -> dict:
    """The top-up packs and the plans, and which plans this reader may switch to."""
    current = workspace.plan_id
    return {
        "subscribed": getattr(workspace, "live_subscription", None) is not None,
        "seats": workspace.seats,
        "packs": offers.packs,
        "plans": [
            {
                "plan": plan,
                "current": plan.pk == current,
                # Free is reached by cancelling in the portal, never bought.
                "can_switch": can_manage and plan.pk != current and not plan.is_free,
            }
            for plan in offers.plans
        ],
    }


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
