"""The workspace list support starts from: what it shows, how it finds, what it costs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.models import Plan, Subscription
from tests.admin.conftest import make_person
from tests.conftest import fund
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:billing_workspace_changelist"


def _names(client, query=None) -> list[str]:
    response = client.get(reverse(CHANGELIST), query or {})
    assert response.status_code == 200
    return sorted(ws.name for ws in response.context["cl"].result_list)


@pytest.fixture
def workspaces(db):
    acme = WorkspaceFactory(name="Acme", owner=UserFactory(email="ana@acme.test"))
    fund(acme, plan=1_000, topup=250)
    globex = WorkspaceFactory(name="Globex", plan_key="pro", seats=3)
    now = timezone.now()
    Subscription.objects.create(
        workspace=globex,
        stripe_subscription_id="sub_1",
        status="past_due",
        plan=Plan.objects.get(key="pro"),
        current_period_start=now - timedelta(days=31),
        current_period_end=now - timedelta(days=1),
        past_due_since=now - timedelta(days=1),
    )
    globex.stripe_customer_id = "cus_globex"
    globex.save(update_fields=["stripe_customer_id"])
    initech = WorkspaceFactory(name="Initech")
    initech.closed_at = now
    initech.save(update_fields=["closed_at"])
    return acme, globex, initech


def test_the_list_shows_balances_period_byok_and_past_due(client, workspaces):
    acme = workspaces[0]
    client.force_login(make_person("staff"))
    response = client.get(reverse(CHANGELIST))
    model_admin = admin.site._registry[type(acme)]
    rows = {ws.name: ws for ws in response.context["cl"].result_list}
    assert (model_admin.plan_bucket(rows["Acme"]), model_admin.topup(rows["Acme"])) == ("1,000", "250")
    assert model_admin.total(rows["Acme"]) == "1,250"
    assert model_admin.period_end(rows["Acme"]) == acme.wallet.period_end
    assert model_admin.past_due(rows["Globex"]) and not model_admin.past_due(rows["Acme"])
    assert not model_admin.byok(rows["Acme"])
    page = response.content.decode()
    assert "1,250" in page and "Globex" in page


def test_search_by_name_member_email_and_stripe_customer(client, workspaces):
    client.force_login(make_person("staff"))
    assert _names(client, {"q": "acm"}) == ["Acme"]
    assert _names(client, {"q": "ana@acme.test"}) == ["Acme"]
    assert _names(client, {"q": "cus_globex"}) == ["Globex"]
    assert _names(client, {"q": "cus_glo"}) == []  # the customer id is matched exactly


def test_filters_by_plan_and_state(client, workspaces):
    client.force_login(make_person("staff"))
    assert _names(client, {"plan__id__exact": str(Plan.objects.get(key="pro").pk)}) == ["Globex"]
    assert _names(client, {"state": "past_due"}) == ["Globex"]
    assert _names(client, {"state": "closed"}) == ["Initech"]
    assert _names(client, {"state": "open"}) == ["Acme", "Globex"]
    assert _names(client, {"state": "byok"}) == []


def test_the_list_costs_the_same_queries_for_3_or_13_workspaces(client, workspaces):
    client.force_login(make_person("staff"))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse(CHANGELIST)).status_code == 200
        return len(captured)

    few = queries()
    for n in range(10):
        fund(WorkspaceFactory(name=f"More {n}"), topup=1)
    assert queries() == few


def test_nothing_about_a_workspace_is_edited_here(client, workspaces):
    acme, _, _ = workspaces
    client.force_login(make_person("superuser"))
    url = reverse("admin:billing_workspace_change", args=[acme.pk])
    page = client.get(url).content.decode()
    assert 'name="_save"' not in page
    assert client.post(url, {"name": "Renamed", "seats": "9"}).status_code == 403
    assert client.get(reverse("admin:billing_workspace_add")).status_code == 403
    assert client.post(reverse("admin:billing_workspace_delete", args=[acme.pk]), {"post": "yes"}).status_code == 403
    acme.refresh_from_db()
    assert (acme.name, acme.seats) == ("Acme", 1)


def test_every_registered_list_opens_for_the_superuser_and_for_no_one_outside_staff(client, workspaces):
    """Any admin page, ours or another app's: a crash or an open door shows up here."""
    lists = [reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist") for m in admin.site._registry]
    for role, expected in (("anonymous", 302), ("member", 302), ("superuser", 200)):
        person = make_person(role)
        client.logout()
        if person is not None:
            client.force_login(person)
        assert {url: client.get(url).status_code for url in lists} == dict.fromkeys(lists, expected)
