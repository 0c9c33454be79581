"""Low-balance alerts: owners and admins hear once per period per threshold.

Two thresholds, the same the balance card shows: the total (bucket + top-ups) below 20 % of
the period's allowance, and the plan bucket used up. One set-based statement finds every
workspace that crossed one and records the alert (a unique key per workspace, period and
threshold makes a second run, or two at once, find nothing new); the emails go out after
that commits. A send that fails removes its record, so the next run tries again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from billing.credits import format_credits
from billing.db import insert, table
from billing.models import BalanceAlert, Membership, Wallet, Workspace
from billing.selectors import LOW_FRACTION

logger = logging.getLogger(__name__)


_ALERT = insert(
    BalanceAlert,
    {
        "workspace_id": "w.workspace_id",
        "period_start": "w.period_start",
        "kind": "k.kind",
        "recipients": "0",
        "sent_at": "%(now)s",
    },
)
_CROSSED_SQL = f"""
{_ALERT}
FROM {table(Wallet)} w
JOIN {table(Workspace)} ws ON ws.id = w.workspace_id AND ws.closed_at IS NULL
CROSS JOIN (VALUES ('low'), ('empty')) AS k(kind)
WHERE w.period_allowance > 0
  AND CASE k.kind
        WHEN 'low' THEN (w.plan_balance + w.topup_balance) * %(den)s < w.period_allowance * %(num)s
        ELSE w.plan_balance = 0
      END
ON CONFLICT (workspace_id, period_start, kind) DO NOTHING
RETURNING id
"""


@dataclass
class AlertSummary:
    sent: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def balance_alerts_send(*, now: datetime | None = None) -> AlertSummary:
    now = now or timezone.now()
    num, den = LOW_FRACTION
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CROSSED_SQL, {"now": now, "num": num, "den": den})
        ids = [row[0] for row in cursor.fetchall()]
    summary = AlertSummary()
    for alert in BalanceAlert.objects.filter(pk__in=ids).select_related("workspace"):
        try:
            alert.recipients = _email(alert)
        except Exception:  # the mail server: keep going, and let the next run retry this one
            logger.exception("balance alert %s for workspace %s not sent", alert.kind, alert.workspace_id)
            alert.delete()
            summary.failed.append((alert.workspace_id, alert.kind))
            continue
        alert.save(update_fields=["recipients"])
        summary.sent.append((alert.workspace_id, alert.kind))
    return summary


def _email(alert: BalanceAlert) -> int:
    workspace: Workspace = alert.workspace
    wallet = Wallet.objects.get(workspace=workspace)
    recipients = list(
        Membership.objects.filter(
            workspace=workspace, role__in=(Membership.Role.OWNER, Membership.Role.ADMIN), user__is_active=True
        )
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if not recipients:
        return 0
    link = settings.SITE_URL + reverse("billing:settings_billing")
    renews = wallet.period_end.astimezone(workspace.zone)  # the day as the pages give it: the workspace's
    total = format_credits(wallet.plan_balance + wallet.topup_balance)
    if alert.kind == BalanceAlert.Kind.EMPTY:
        subject = f"{workspace.name}: your plan's credits are used up"
        lead = f"The {format_credits(wallet.period_allowance)} credits of this period's plan bucket are used up. " + (
            f"{total} top-up credits are left and in use now." if wallet.topup_balance else "Charges are refused."
        )
    else:
        subject = f"{workspace.name}: {total} credits left"
        allowance = format_credits(wallet.period_allowance)
        lead = f"{workspace.name} has {total} credits left, under 20% of this period's {allowance}."
    send_mail(
        subject=subject,
        message=f"{lead}\n\nTop up or upgrade: {link}\n\nThe bucket renews on {renews:%B} {renews.day}, {renews.year}.",
        from_email=None,
        recipient_list=recipients,
    )
    return len(recipients)


def budget_alert_send(*, workspace_id: int, period_start: datetime) -> bool:
    """The monthly budget refused a charge: email the owners, once per period. True if sent now."""
    alert, created = BalanceAlert.objects.get_or_create(
        workspace_id=workspace_id, period_start=period_start, kind=BalanceAlert.Kind.BUDGET
    )
    if not created:
        return False
    workspace = Workspace.objects.get(pk=workspace_id)
    owners = list(
        Membership.objects.filter(workspace=workspace, role=Membership.Role.OWNER)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    budget = format_credits(workspace.monthly_budget or 0)
    link = settings.SITE_URL + reverse("billing:settings_billing")

    def send() -> None:
        send_mail(
            subject=f"{workspace.name}: the monthly budget of {budget} credits is reached",
            message=(
                f"{workspace.name} has spent its monthly budget of {budget} credits, so further charges are "
                f"refused until the period renews. Raise or remove the budget: {link}"
            ),
            from_email=None,
            recipient_list=owners,
        )

    if owners:
        transaction.on_commit(send)
    BalanceAlert.objects.filter(pk=alert.pk).update(recipients=len(owners))
    return True
