"""The plan advisor's region on Settings → Billing & Credits: the figures, who gets the buttons, and its cost."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.credits import credits
from billing.models import Action, DailyUsage, Membership, Plan, Subscription, Workspace
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(db):
    """A Max workspace with an owner and a member, and another workspace that must never show through."""
    owner, member = UserFactory(email="owner@example.test"), UserFactory(email="member@example.test")
    ws = WorkspaceFactory(owner=owner, name="Team", plan_key="max")
    Membership.objects.create(workspace=ws, user=member, role="member")
    return ws, owner, member


def used(workspace: Workspace, per_day: int, days: int) -> None:
    """Day counters for the ``days`` whole days before today: ``per_day`` credits each."""
    today = timezone.now().astimezone(workspace.zone).date()
    action = Action.objects.get(key="linkedin-dm")
    DailyUsage.objects.bulk_create(
        DailyUsage(
            workspace=workspace,
            day=today - timedelta(days=n),
            specialist_id="outreach",
            action=action,
            credits=credits(per_day),
            list_credits=credits(per_day),
            quantity=1,
            events=1,
        )
        for n in range(1, days + 1)
    )


def region(page: str) -> str:
    found = re.search(r'<section id="advisor".*?</section>', page, re.S)
    assert found, "the advisor's region is on the page"
    return found.group(0)


def text(html: str) -> str:
    """What a reader sees: inline tags dropped, the others a space."""
    inline = re.sub(r"</?(strong|span|a)\b[^>]*>", "", html)
    return " ".join(re.sub(r"<[^>]+>", " ", inline).split())


def forms(html: str) -> list[tuple[str, str]]:
    """Each form's action and its button's words."""
    return [
        (action, text(button))
        for action, button in re.findall(
            r'<form method="post" action="([^"]+)">.*?<button[^>]*>(.*?)</button>', html, re.S
        )
    ]


def advisor_of(client, user) -> str:
    client.force_login(user)
    response = client.get(reverse("billing:settings_billing"))
    assert response.status_code == 200
    return region(response.content.decode())


def test_the_owner_sees_every_plans_figures_the_cheapest_and_the_buttons_of_the_flows_that_exist(client, team):
    ws, owner, _ = team
    used(ws, 200_000 // 30, 30)  # 6,666 credits a day: 199,980 a month
    Subscription.objects.create(
        workspace=ws,
        stripe_subscription_id="sub_advisor",
        status="active",
        plan=Plan.objects.get(key="max"),
        current_period_start=timezone.now() - timedelta(days=3),
        current_period_end=timezone.now() + timedelta(days=27),
    )
    shown = advisor_of(client, owner)
    words = text(shown)
    assert "The cheapest way to cover your usage" in words
    assert (
        "For 199,980 credits a month, the cheapest way is Free + 2 × 100K packs at $30 a month: "
        "$29 less than the $59 your usage costs on Max now." in words
    )
    assert "199,980 credits used" in words and "the last 30 days" in words
    rows = {plan: text(row) for plan, row in re.findall(r'<tr data-plan="(\w+)"[^>]*>(.*?)</tr>', shown, re.S)}
    # Two members: Pro needs two seats (160,000 credits), and a 50K pack covers the rest.
    assert rows == {
        "free": "Free Cheapest $0 · 10,000 credits 2 × 100K ($30) 210,000 $30",
        "pro": "Pro × 2 seats $58 · 160,000 credits 50K ($9) 210,000 $67",
        "max": "Max Your plan $59 · 300,000 credits none needed 300,000 $59",
        "ultra": "Ultra $119 · 800,000 credits none needed 800,000 $119",
    }
    # Free is reached by cancelling in the portal; the packs through their checkout, one each.
    assert forms(shown) == [
        (reverse("billing:billing_portal"), "Move to Free in the billing portal"),
        (reverse("billing:purchase", args=["top-up", "100k"]), "Buy 100K · $15"),
    ]
    assert "Each checkout buys one pack; the advice counts 2 × 100K a month." in words


def test_a_member_reads_the_same_advice_without_any_button(client, team):
    ws, _, member = team
    used(ws, 2_000, 30)
    shown = advisor_of(client, member)
    assert "the cheapest way is Free + 2 × 100K packs" not in text(shown)  # 60,000 a month: one 50K pack
    assert "the cheapest way is Free + the 50K pack at $9 a month" in text(shown)
    assert "<form" not in shown and "<button" not in shown
    assert "Only the workspace's owners and admins can change the plan or buy packs." in text(shown)


def test_a_paid_plan_to_switch_to_is_offered_through_the_plan_button_with_its_seats(client, team):
    """Only a 1M pack on offer: 90,000 credits a month on Max are cheapest on Pro × 2 seats ($58, both members)."""
    from billing.models import TopUpPack

    ws, owner, _ = team
    TopUpPack.objects.exclude(key="1m").update(is_active=False)
    used(ws, 3_000, 30)
    shown = advisor_of(client, owner)
    assert "the cheapest way is Pro × 2 seats at $58 a month: $1 less than the $59" in text(shown)
    assert forms(shown) == [(reverse("billing:purchase", args=["upgrade", "pro"]), "Switch to Pro × 2 seats")]
    assert '<input type="hidden" name="seats" value="2">' in shown


def test_when_what_the_workspace_has_is_cheapest_it_says_so_and_offers_no_switch(client, team):
    ws, owner, _ = team
    Workspace.objects.filter(pk=ws.pk).update(plan=Plan.objects.get(key="free"))
    used(ws, 100, 10)  # 3,000 credits a month: the Free bucket covers it
    shown = advisor_of(client, owner)
    words = text(shown)
    assert "For 3,000 credits a month, what you have is already the cheapest way: Free at $0 a month." in words
    assert "10 days of history scaled to 30 days" in words
    assert "<form" not in shown


def test_below_a_week_of_usage_it_asks_for_more_instead_of_guessing(client, team):
    ws, owner, member = team
    assert "there is none yet" in text(advisor_of(client, owner))
    used(ws, 50_000, 6)
    for user in (owner, member):
        words = text(advisor_of(client, user))
        assert "needs at least a week of usage" in words and "6 days so far, 1 more to go" in words
        assert "$" not in words and "<table" not in advisor_of(client, user)


def test_the_advisor_adds_a_statement_to_the_pages_one_round_trip_and_no_query(client, team):
    ws, owner, _ = team
    client.force_login(owner)
    url = reverse("billing:settings_billing")
    client.get(url)  # the catalog snapshot and the offers it keeps

    def queries() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return [query["sql"] for query in captured.captured_queries]

    before = queries()
    used(ws, 7_000, 30)
    after = queries()
    assert len(before) == len(after) == 3  # the session, the user with memberships, and one round trip
    [read] = [sql for sql in after if "billing_dailyusage" in sql]
    assert "billing_membership" in read and "billing_ledgerentry" in read and "billing_purchase" in read
    assert "210,000 credits used" in text(region(client.get(url).content.decode()))  # the region, with its figures
