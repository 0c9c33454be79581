"""Settings → Auto top-up & budget: who may change what, validation, and what it shows."""

from __future__ import annotations

import pytest
from django.urls import reverse

from billing.credits import credits
from billing.models import AutoTopUp, Membership, Workspace
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db
URL = reverse("billing:settings_spending")


@pytest.fixture
def team():
    owner, member = UserFactory(), UserFactory()
    ws = WorkspaceFactory(owner=owner)
    Membership.objects.create(workspace=ws, user=member, role="member")
    return ws, owner, member


def test_everyone_sees_it_members_cannot_change_it(client, team):
    ws, _owner, member = team
    client.force_login(member)
    page = client.get(URL)
    assert page.status_code == 200 and "Only the workspace's owners and admins" in page.content.decode()
    assert client.post(URL, {"action": "budget", "budget": "100"}).status_code == 403
    assert (
        client.post(
            URL, {"action": "auto_top_up", "enabled": "on", "threshold": "5", "pack": "100k", "monthly_limit": "2"}
        ).status_code
        == 403
    )
    assert Workspace.objects.get(pk=ws.pk).monthly_budget is None and not AutoTopUp.objects.exists()
    client.logout()
    assert client.get(URL).status_code == 302


def test_owner_sets_and_clears_the_budget(client, team):
    ws, owner, _ = team
    client.force_login(owner)
    response = client.post(URL, {"action": "budget", "budget": "25,000"}, follow=True)
    assert "The monthly budget is saved." in response.content.decode()
    assert Workspace.objects.get(pk=ws.pk).monthly_budget == credits(25_000)
    assert "0 of 25,000 credits spent this period" in response.content.decode()
    bad = client.post(URL, {"action": "budget", "budget": "lots"})
    assert bad.status_code == 422 and "Enter a number of credits" in bad.content.decode()
    client.post(URL, {"action": "budget", "budget": ""})
    assert Workspace.objects.get(pk=ws.pk).monthly_budget is None


def test_auto_top_up_needs_a_saved_card_and_valid_fields(client, team):
    ws, owner, _ = team
    client.force_login(owner)
    form = {"action": "auto_top_up", "enabled": "on", "threshold": "20000", "pack": "100k", "monthly_limit": "3"}
    refused = client.post(URL, form)
    assert refused.status_code == 422 and "Buy a top-up once first" in refused.content.decode()
    assert not AutoTopUp.objects.exists()
    Workspace.objects.filter(pk=ws.pk).update(stripe_customer_id="cus_saved")
    for change, words in (
        ({"threshold": "0"}, "positive"),
        ({"monthly_limit": "40"}, "less than or equal to 31"),
        ({"pack": "nope"}, "Select a valid choice"),
    ):
        response = client.post(URL, {**form, **change})
        assert response.status_code == 422 and words in response.content.decode()
    assert not AutoTopUp.objects.exists()
    saved = client.post(URL, form, follow=True)
    assert "Auto top-up is on." in saved.content.decode()
    setting = AutoTopUp.objects.get(workspace=ws)
    assert setting.enabled and setting.threshold == credits(20_000) and setting.pack.key == "100k"
    assert "On: 100,000 credits when the balance is below 20,000 credits" in saved.content.decode()


def test_someone_elses_settings_are_not_reachable(client, team):
    ws, _owner, _ = team
    stranger = UserFactory()
    WorkspaceFactory(owner=stranger)
    client.force_login(stranger)
    client.post(URL, {"action": "budget", "budget": "1"})
    assert Workspace.objects.get(pk=ws.pk).monthly_budget is None
