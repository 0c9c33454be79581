"""Holds in the admin: what a workspace's running jobs reserve, to look at and never to change."""

from __future__ import annotations

from django.urls import reverse

from billing.credits import credits
from billing.services.holds import hold_place, hold_release
from tests.conftest import fund
from tests.factories import WorkspaceFactory


def test_staff_see_holds_by_workspace_and_cannot_change_them(admin_client):
    ws, other = WorkspaceFactory(), WorkspaceFactory()
    fund(ws, topup=1_000)
    fund(other, topup=1_000)
    running = hold_place(workspace=ws, amount=credits(250), idempotency_key="opus-run-7")
    freed = hold_place(workspace=ws, amount=credits(10), idempotency_key="opus-run-8")
    hold_release(workspace=ws, hold_id=freed.pk)
    elsewhere = hold_place(workspace=other, amount=credits(5), idempotency_key="elsewhere")

    listing = admin_client.get(reverse("admin:billing_hold_changelist"), {"workspace": ws.pk})
    html = listing.content.decode()
    assert listing.status_code == 200
    assert f">{running.pk}<" in html and f">{freed.pk}<" in html and f">{elsewhere.pk}<" not in html
    assert "250" in html and "Released" in html
    found = admin_client.get(reverse("admin:billing_hold_changelist"), {"q": "opus-run-7"}).content.decode()
    assert f">{running.pk}<" in found and f">{freed.pk}<" not in found
    page = admin_client.get(reverse("admin:billing_hold_change", args=[running.pk]))
    assert page.status_code == 200 and "opus-run-7" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()  # read-only: nothing to save
    change, delete = (reverse(f"admin:billing_hold_{what}", args=[running.pk]) for what in ("change", "delete"))
    assert admin_client.post(change, {"amount": 1}).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:billing_hold_add")).status_code == 403
    running.refresh_from_db()
    assert running.amount == credits(250) and running.status == "active"
