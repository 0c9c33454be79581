"""Settings → Auto top-up & budget."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from billing import selectors, services
from billing.credits import credits, format_cents, format_credits_short
from billing.errors import BillingError
from billing.forms import AutoTopUpForm, BudgetForm, refusal_shown
from billing.models import AutoTopUp, Purchase
from billing.views.access import workspace_view

DEFAULT_THRESHOLD = credits(20_000)  # what the form suggests before auto top-up is first set


def _pack_choices() -> list[tuple[str, str]]:
    return [
        (
            offer.pack.key,
            f"{format_credits_short(offer.pack.amount)} credits for {format_cents(offer.pack.price_cents)}",
        )
        for offer in selectors.offers().packs
    ]


@require_http_methods(["GET", "POST"])
@workspace_view()
def settings_spending(request: HttpRequest) -> HttpResponse:
    """Auto top-up (buy a pack when the balance runs low) and the monthly spend guardrail."""
    workspace = request.workspace
    current = AutoTopUp.objects.select_related("pack").filter(workspace=workspace).first()
    initial = (
        {
            "enabled": current.enabled,
            "threshold": current.threshold,  # millicredits: the field shows them as credits
            "pack": current.pack.key,
            "monthly_limit": current.monthly_limit,
        }
        if current
        else {"threshold": DEFAULT_THRESHOLD, "pack": "100k", "monthly_limit": 3}
    )
    budget_initial = {"budget": workspace.monthly_budget}
    action = request.POST.get("action") if request.method == "POST" else None
    auto_form = AutoTopUpForm(request.POST if action == "auto_top_up" else None, initial=initial, packs=_pack_choices())
    budget_form = BudgetForm(request.POST if action == "budget" else None, initial=budget_initial)
    if action:
        if not request.membership.can_manage_billing:
            raise PermissionDenied("Only the workspace's owners and admins can change auto top-up or the budget.")
        try:
            if action == "auto_top_up" and auto_form.is_valid():
                data = auto_form.cleaned_data
                services.auto_topup_set(
                    workspace=workspace,
                    actor=request.user,
                    enabled=data["enabled"],
                    threshold=data["threshold"],
                    pack_key=data["pack"],
                    monthly_limit=data["monthly_limit"],
                )
                messages.success(request, "Auto top-up is on." if data["enabled"] else "Auto top-up is off.")
                return redirect("billing:settings_spending")
            if action == "budget" and budget_form.is_valid():
                amount = budget_form.cleaned_data["budget"]
                services.budget_set(workspace=workspace, monthly_budget=amount, actor=request.user)
                messages.success(
                    request, "The monthly budget is removed." if amount is None else "The monthly budget is saved."
                )
                return redirect("billing:settings_spending")
        except BillingError as refusal:
            refusal_shown(auto_form if action == "auto_top_up" else budget_form, refusal)
    recent = list(
        Purchase.objects.select_related("pack")
        .filter(workspace=workspace, kind=Purchase.Kind.AUTO_TOP_UP)
        .order_by("-id")[:5]
    )
    context = {
        "auto": current,
        "auto_form": auto_form,
        "budget_form": budget_form,
        "recent": recent,
        "wallet": workspace.wallet,
        "can_manage": request.membership.can_manage_billing,
        "has_card": bool(workspace.stripe_customer_id),
    }
    status = 422 if auto_form.errors or budget_form.errors else 200
    return render(request, "billing/settings_spending.html", context, status=status)
