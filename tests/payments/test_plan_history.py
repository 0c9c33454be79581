"""A plan's invoices in the billing history: the period each one bills, and what a change moved to."""

from __future__ import annotations

from datetime import UTC

import pytest
from django.utils import dateformat

from billing.models import Purchase, Subscription
from billing.selectors import billing_history
from tests.factories import UserFactory, WorkspaceFactory
from tests.payments.test_subscriptions import change, subscribe

live = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def day(moment) -> str:
    return dateformat.format(moment.astimezone(UTC), "M j")


@live
def test_the_first_invoice_names_its_period_and_an_upgrade_the_plan_it_moved_to(client, webhooks, stripe_client):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    first = subscribe(client, webhooks, owner, "pro", seats=2)
    subscription = Subscription.objects.get(workspace=ws)
    webhooks.advance(10 * 86400)
    change(stripe_client, ws, plan_key="max")
    webhooks.wait_for_deliveries()

    first.refresh_from_db()
    assert (first.period_start, first.period_end) == (
        subscription.current_period_start,
        subscription.current_period_end,
    )
    upgrade = Purchase.objects.get(workspace=ws, kind="upgrade")
    assert upgrade.plan.key == "max"  # the invoice lists the unused time on Pro first: not what was bought

    rows = billing_history(workspace_id=ws.pk, zone=UTC).rows
    assert [(row.pk, row.description, row.status, row.link_label) for row in rows] == [
        (upgrade.pk, "Upgrade to Max", "paid", "Invoice"),
        (
            first.pk,
            f"Pro plan × 2 seats, {day(first.period_start)} – {day(first.period_end)}",
            "paid",
            "Invoice",
        ),
    ]
    assert all(row.link_url.startswith(webhooks.url) for row in rows)
