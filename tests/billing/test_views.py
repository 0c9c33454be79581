"""The settings pages: who may see and do what, and what each region shows."""

import csv
import dataclasses
import io
import re

import pytest
from django.core import mail
from django.urls import reverse

from billing.credits import credits
from billing.models import Activity, Invitation, Membership, Plan, SpecialistCap, Workspace
from billing.services import byok_set, charge, charge_batch
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
BYOK_KEY = "sk-ant-api03-" + "k" * 40


@pytest.fixture
def team(db):
    """A workspace with an owner, an admin and a member, and a stranger with a workspace of their own."""
    owner = UserFactory(email="owner@example.test")
    ws = WorkspaceFactory(owner=owner, name="Team")
    admin, member = UserFactory(email="admin@example.test"), UserFactory(email="member@example.test")
    Membership.objects.create(workspace=ws, user=admin, role="admin")
    Membership.objects.create(workspace=ws, user=member, role="member")
    stranger = UserFactory(email="stranger@example.test")
    other = WorkspaceFactory(owner=stranger, name="Elsewhere")
    return {"ws": ws, "owner": owner, "admin": admin, "member": member, "stranger": stranger, "other": other}


def client_for(client, user):
    client.force_login(user)
    return client


READ_URLS = [
    "billing:settings_billing",
    "billing:balance",
    "billing:transactions",
    "billing:transactions_csv",
    "billing:usage",
    "billing:caps",
    "billing:history",
    "billing:settings_byok",
    "billing:settings_spending",
    "billing:settings_members",
    "billing:settings_activity",
]


@pytest.mark.parametrize("name", READ_URLS)
def test_anonymous_visitors_are_sent_to_sign_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", READ_URLS)
@pytest.mark.parametrize("role", ["owner", "admin", "member"])
def test_every_role_can_view(client, team, name, role):
    response = client_for(client, team[role]).get(reverse(name))
    assert response.status_code == 200


@pytest.mark.parametrize("name", READ_URLS)
def test_a_user_without_a_workspace_gets_404(client, name):
    assert client_for(client, UserFactory()).get(reverse(name)).status_code == 404


MANAGE_POSTS = [
    ("billing:caps", {}, {"specialist": "outreach", "daily_cap": "5000"}),
    ("billing:settings_byok", {}, {"action": "set", "api_key": BYOK_KEY}),
    ("billing:settings_members", {}, {"email": "new@example.test", "role": "member"}),
    ("billing:purchase", {"kind": "top-up", "key": "100k"}, {}),
    ("billing:purchase", {"kind": "upgrade", "key": "pro"}, {}),
]


@pytest.mark.parametrize(("name", "kwargs", "data"), MANAGE_POSTS)
def test_members_cannot_manage_billing(client, team, name, kwargs, data):
    response = client_for(client, team["member"]).post(reverse(name, kwargs=kwargs), data)
    assert response.status_code == 403
    assert not SpecialistCap.objects.exists()
    assert not Workspace.objects.get(pk=team["ws"].pk).has_byok
    assert not Invitation.objects.exists()


@pytest.mark.parametrize(("name", "kwargs", "data"), MANAGE_POSTS)
@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_can_manage_billing(client, team, name, kwargs, data, role):
    response = client_for(client, team[role]).post(reverse(name, kwargs=kwargs), data)
    assert response.status_code in (200, 302)


def test_nobody_reaches_another_workspaces_rows(client, team):
    other = team["other"]
    stranger_membership = Membership.objects.get(workspace=other)
    invitation_elsewhere = Invitation.objects.create(
        workspace=other, email="x@example.test", token_hash="0" * 64, expires_at="2100-01-01T00:00Z"
    )
    owner = client_for(client, team["owner"])
    assert owner.post(reverse("billing:member_remove", args=[stranger_membership.pk])).status_code == 404
    assert owner.post(reverse("billing:invitation_revoke", args=[invitation_elsewhere.pk])).status_code == 404
    assert owner.post(reverse("billing:workspace_switch"), {"workspace": other.pk}).status_code == 404
    assert Membership.objects.filter(pk=stranger_membership.pk).exists()
    # The pages show only the current workspace's ledger.
    charge(workspace=other, action="linkedin-dm", idempotency_key="secret-elsewhere")
    page = owner.get(reverse("billing:settings_billing")).content.decode()
    rows = page.split('data-testid="transactions"')[1].split("</table>")[0]
    assert "LinkedIn DM via Unipile" not in rows and "Plan credits granted" in rows
    exported = b"".join(owner.get(reverse("billing:transactions_csv")).streaming_content).decode()
    assert "secret-elsewhere" not in exported


def test_the_balance_card_and_its_warnings(client, team):
    ws = team["ws"]
    owner = client_for(client, team["owner"])
    page = owner.get(reverse("billing:settings_billing")).content.decode()
    assert 'data-testid="total-credits">10,000<' in page
    assert "Free" in page
    charge_batch(workspace=ws, events=[{"action": "crustdata-search", "idempotency_key": f"s{i}"} for i in range(17)])
    fragment = owner.get(reverse("billing:balance"), HTTP_HX_REQUEST="true").content.decode()
    assert "<h1>" not in fragment  # the region alone
    assert 'data-testid="total-credits">1,500<' in fragment
    assert "You have used 85% of this month" in fragment
    charge_batch(workspace=ws, events=[{"action": "crustdata-search", "idempotency_key": f"t{i}"} for i in range(3)])
    fragment = owner.get(reverse("billing:balance"), HTTP_HX_REQUEST="true").content.decode()
    assert "no top-up credits left: charges are refused" in fragment


def test_an_unchanged_balance_answers_304(client, team):
    owner = client_for(client, team["owner"])
    first = owner.get(reverse("billing:balance"), HTTP_HX_REQUEST="true")
    again = owner.get(reverse("billing:balance"), HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    charge(workspace=team["ws"], action="gmail-send", idempotency_key="moved")
    changed = owner.get(reverse("billing:balance"), HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]


def test_the_balance_is_not_304_when_what_it_shows_changed_beside_the_wallet(client, team):
    from datetime import timedelta

    from django.utils import timezone

    from billing.models import Plan, Subscription

    ws, owner = team["ws"], client_for(client, team["owner"])

    def poll(etag: str):
        return owner.get(reverse("billing:balance"), HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=etag)

    etag = poll("")["ETag"]
    now = timezone.now()
    subscription = Subscription.objects.create(
        workspace=ws,
        stripe_subscription_id="sub_etag",
        status="active",
        plan=Plan.objects.get(key="pro"),
        current_period_start=now,
        current_period_end=now + timedelta(days=30),
    )
    changed = poll(etag)  # a subscription started (the portal button, the plan)
    assert changed.status_code == 200
    assert poll(changed["ETag"]).status_code == 304
    # A renewal failed (the webhook moves the subscription, not the wallet): the banner must show.
    Subscription.objects.filter(pk=subscription.pk).update(status="past_due", past_due_since=now)
    banner = poll(changed["ETag"])
    assert banner.status_code == 200 and 'data-testid="past-due"' in banner.content.decode()
    Subscription.objects.filter(pk=subscription.pk).update(cancel_at_period_end=True)
    cancelled = poll(banner["ETag"])
    assert cancelled.status_code == 200 and "Cancelled: back to Free" in cancelled.content.decode()
    Workspace.objects.filter(pk=ws.pk).update(monthly_budget=credits(500))
    budget = poll(cancelled["ETag"])
    assert budget.status_code == 200 and 'data-testid="budget"' in budget.content.decode()
    assert poll(budget["ETag"]).status_code == 304


def test_transactions_filter_page_by_keyset_and_export(client, team):
    ws = team["ws"]
    events = [{"action": "claude-haiku", "quantity": 7, "idempotency_key": f"h{i}"} for i in range(40)]
    events += [{"action": "gmail-send", "idempotency_key": f"g{i}"} for i in range(30)]
    charge_batch(workspace=ws, events=events)
    owner = client_for(client, team["owner"])
    url = reverse("billing:transactions")
    first = owner.get(url, {"action": "gmail-send"}, HTTP_HX_REQUEST="true").content.decode()
    assert first.count("<tr data-entry=") == 25
    assert "Claude Haiku</td>" not in first and "Cold email send via Gmail (Composio)</td>" in first
    cursor = int(re.search(r"before=(\d+)", first).group(1))
    more = owner.get(url, {"action": "gmail-send", "before": cursor}, HTTP_HX_REQUEST="true").content.decode()
    assert more.count("<tr data-entry=") == 5 and "Load more" not in more
    assert "<table" not in more  # rows to append, not a new table
    export = owner.get(reverse("billing:transactions_csv"), {"action": "gmail-send"})
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0][:3] == ["ID", "Time", "Kind"] and rows[0][7:9] == ["Credits", "Plan bucket (credits)"]
    assert len(rows) == 31 and {row[4] for row in rows[1:]} == {"Cold email send via Gmail (Composio)"}
    assert {(row[2], row[7]) for row in rows[1:]} == {("Usage", "-200")}
    kinds = owner.get(url, {"kind": "plan_grant"}, HTTP_HX_REQUEST="true").content.decode()
    assert kinds.count("<tr data-entry=") == 1 and "Plan credits granted" in kinds
    bad = owner.get(url, {"date_from": "2027-02-01", "date_to": "2027-01-01"}, HTTP_HX_REQUEST="true").content.decode()
    assert "The end date is before the start date." in bad
    for far in ({"date_to": "9999-12-31"}, {"date_from": "0001-01-01"}):  # midnights there overflow
        answer = owner.get(url, far, HTTP_HX_REQUEST="true")
        assert answer.status_code == 200 and "Enter a date between 2000 and 2999." in answer.content.decode()


def test_the_usage_region_shows_tools_specialists_savings_and_a_forecast(client, team):
    ws = team["ws"]
    byok_set(workspace=ws, api_key=BYOK_KEY)
    charge(workspace=ws, action="claude-opus", quantity=1_000, idempotency_key="o", specialist="publishing")
    charge(workspace=ws, action="crustdata-search", quantity=2, idempotency_key="s")
    html = client_for(client, team["owner"]).get(reverse("billing:usage"), HTTP_HX_REQUEST="true").content.decode()
    assert "Crustdata search" in html and "Claude Opus" in html
    assert '1,500</span><span class="muted">saved by BYOK' in html
    assert "Sales / Sourcing" in html and "100%" in html
    assert '<figure class="chart"' in html and '<rect class="bar"' in html
    assert 'data-testid="forecast"' in html


def test_a_fresh_period_says_nothing_is_used_yet_and_draws_no_chart(client, team):
    html = client_for(client, team["owner"]).get(reverse("billing:usage"), HTTP_HX_REQUEST="true").content.decode()
    assert "Nothing used yet this period." in html and "No usage yet this period." in html
    assert "No specialist has used credits yet this period." in html and "<figure" not in html
    assert "A chart of the credits used each day, by tool, appears here once your specialists start" in html


def test_empty_lists_say_what_will_appear_there(client, team):
    owner = client_for(client, team["owner"])
    activity = owner.get(reverse("billing:settings_activity")).content.decode()
    assert "No activity yet. Changes to the plan, top-ups, caps, the budget" in activity
    none_match = owner.get(reverse("billing:transactions"), {"kind": "refund"}, HTTP_HX_REQUEST="true")
    assert "No transactions match these filters. Clear them to see every transaction." in none_match.content.decode()
    caps = owner.get(reverse("billing:settings_billing")).content.decode().split('id="caps"')[1]
    assert "<code>" not in caps and "A daily cap (a cadence cap) stops a specialist" in caps


def test_the_forecast_says_when_the_bucket_and_then_the_top_ups_run_out_at_this_pace(client, db):
    from datetime import UTC, datetime

    import time_machine
    from django.db import transaction

    from billing.services import entry_post, wallet_lock

    owner = UserFactory()
    with time_machine.travel(datetime(2027, 3, 1, tzinfo=UTC), tick=False):
        ws = WorkspaceFactory(owner=owner)  # Free: 10,000 credits, the period Mar 1 – Apr 1

    def said() -> str:
        html = client.get(reverse("billing:usage"), HTTP_HX_REQUEST="true").content.decode()
        return re.search(r'<p class="forecast" data-testid="forecast">(.*?)</p>', html).group(1)

    def top_up(amount: str, key: str) -> None:
        with transaction.atomic():
            wallet = wallet_lock(workspace_id=ws.pk)
            entry_post(wallet, kind="adjustment", topup_delta=credits(amount), idempotency_key=key, reason="t",
                       now=datetime(2027, 3, 5, 12, tzinfo=UTC))  # fmt: skip

    with time_machine.travel(datetime(2027, 3, 5, 12, tzinfo=UTC), tick=False):  # the period's fifth day
        client.force_login(owner)  # a session of this day's: one from today's real date would have expired
        assert said() == "No usage yet this period."
        charge(workspace=ws, action="gmail-send", idempotency_key="g")  # 200 a day at most so far: lasts
        assert said() == "At this pace your plan bucket lasts until it renews on Apr 1."
        for n in range(3):
            charge(workspace=ws, action="linkedin-dm", idempotency_key=f"dm{n}")
        # 4,700 spent in 5 days; the 5,300 left last 5,300 × 5 // 4,700 = 5 more days.
        assert said() == (
            "At this pace your plan bucket runs out on <strong>Mar 10</strong>,"
            " and you have no top-up credits to carry on with."
        )
        top_up("4,700", "a")  # 10,000 left in all: 10 more days
        assert said() == (
            "At this pace your plan bucket runs out on <strong>Mar 10</strong>,"
            " and your top-up credits last until Mar 15, 2027."
        )
        top_up("100,000,000", "b")  # beyond the forecast's ten years
        assert said() == (
            "At this pace your plan bucket runs out on <strong>Mar 10</strong>;"
            " your top-up credits then last well beyond it."
        )
        charge(workspace=ws, action="crustdata-enrich", idempotency_key="e")  # 5,000: 300 left, less than a day
        assert said().startswith("At this pace your plan bucket runs out <strong>today</strong>;")
        charge(workspace=ws, action="linkedin-dm", idempotency_key="dm-last")  # the bucket's last 300, then top-ups
        assert said() == (
            "Your plan bucket is used up; at this pace your top-up credits last well past its renewal on Apr 1."
        )
    with time_machine.travel(datetime(2027, 3, 6, 12, tzinfo=UTC), tick=False):
        client.force_login(owner)
        top_up("-99,988,500", "c")  # 15,000 top-up credits left, 11,200 spent in 6 days: 8 more days
        assert said() == (
            "Your plan bucket is used up; at this pace your top-up credits last until <strong>Mar 14, 2027</strong>."
        )
        top_up("-14,000", "d")  # 1,000: less than a day
        assert (
            said()
            == "Your plan bucket is used up, and at this pace your top-up credits run out <strong>today</strong>."
        )
        top_up("-1,000", "f")
        assert said() == "Your plan bucket is used up and there are no top-up credits left."


def test_caps_are_edited_with_the_specialists_spend_today(client, team):
    owner = client_for(client, team["owner"])
    charge(workspace=team["ws"], action="linkedin-dm", idempotency_key="dm")
    response = owner.post(
        reverse("billing:caps"), {"specialist": "outreach", "daily_cap": "5,000"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200 and "<h1>" not in html
    row = html.split('data-specialist="outreach"')[1].split("</tr>")[0]
    assert "1,500" in row and "5,000" in row
    assert SpecialistCap.objects.get().daily_cap == credits(5_000)
    bad = owner.post(reverse("billing:caps"), {"specialist": "outreach", "daily_cap": "lots"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 422 and "Enter a number of credits" in bad.content.decode()
    owner.post(reverse("billing:caps"), {"specialist": "outreach", "daily_cap": ""})
    assert not SpecialistCap.objects.exists()
    assert Activity.objects.filter(verb="cap_changed").count() == 2


def _region(partial: str, context: dict) -> str:
    """A region of the billing page rendered alone from ``context``, as htmx gets it."""
    from django.template.loader import render_to_string

    return render_to_string(f"billing/settings_billing.html#{partial}", context)


def test_cap_rows_show_spend_against_each_cap_with_a_meter_that_warns():
    from billing.forms import CapForm
    from billing.selectors import CapRow

    caps = [
        CapRow("sourcing", "Sales / Sourcing", None, credits(12)),
        CapRow("outreach", "Sales <Outreach>", credits(1_000), credits(790)),
        CapRow("publishing", "Publishing", credits(1_000), credits("800.5")),
        CapRow("other", "Other", credits(1_000), credits(2_500)),
        CapRow("paused", "Paused", 0, 0),
    ]
    html = _region("caps", {"caps": caps, "cap_form": CapForm(), "can_manage": False})
    rows = re.findall(r"<tr data-specialist=.*?</tr>", html, re.S)
    assert len(rows) == 5
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
    assert cells[0] == ["Sales / Sourcing", "12", '<span class="muted">no cap</span>', ""]  # no cap, no meter
    assert rows[1].startswith('<tr data-specialist="outreach"><td data-label="Specialist">Sales &lt;Outreach&gt;</td>')
    assert "<Outreach>" not in rows[1] and 'aria-label="Sales &lt;Outreach&gt; cap used"' in rows[1]
    meters = [re.search(r'aria-valuenow="(\d+)"><div class="meter-fill ?([\w-]*)" data-width="(\d+)"', r) for r in rows]
    assert meters[0] is None
    assert [m.groups() for m in meters[1:]] == [
        ("79", "", "79"), ("80", "level-low", "80"), ("100", "level-empty", "100"), ("100", "level-empty", "100")
    ]  # fmt: skip
    assert cells[2][1:3] == ["800.5", "1,000"] and cells[4][2] == "0"  # a cap of 0: everything is refused


def _usage_region(usage) -> str:
    from billing.charts import usage_chart
    from billing.views.billing import forecast

    return _region("usage", {"usage": usage, "forecast": forecast(usage), "chart": usage_chart(usage)})


def test_the_usage_tables_name_each_tool_and_specialist_with_their_share():
    from datetime import date

    from billing.charts import tool_style
    from billing.selectors import ToolUsage

    usage = _usage({date(2026, 11, 1): {}}, [])
    usage = dataclasses.replace(
        usage,
        tools=[
            ToolUsage("claude-haiku", "Claude <Haiku>", credits("2.5"), credits("2.5"), 12_345, 3, "token", 1),
            ToolUsage("gmail-send", "Gmail send", credits(1), credits(1), 1, 1, unit="call", action_id=8),
        ],
        specialists=[("Sales / Outreach", credits(2_000)), ("Other", credits("1.5")), ("Publishing", 1)],
        total=credits("2001.5") + 1,
    )
    by_tool, by_specialist = _usage_region(usage).split("<caption>By specialist</caption>")
    row = r"<tr><td[^>]*>(.*?)</td><td[^>]*class=\"num\">(.*?)</td><td[^>]*class=\"num\">(.*?)</td></tr>"
    swatch = (
        '<svg class="swatch" width="12" height="12" aria-hidden="true" focusable="false">'
        '<rect width="12" height="12" fill="{}"/>{}</svg>'
    )
    stripes = '<rect width="12" height="12" fill="url(#chart-stripes)"/>'
    assert tool_style(8).mark == "stripes"  # the eighth action: the first colour again, striped
    assert re.findall(row, by_tool) == [
        (swatch.format(tool_style(1).color, "") + "Claude &lt;Haiku&gt;", "12,345 tokens", "2.5"),
        (swatch.format(tool_style(8).color, stripes) + "Gmail send", "1 call", "1"),
    ]
    # A share under 1 % is "<1%", never "0%"; one over 99 % but not all of it is ">99%".
    assert re.findall(row, by_specialist) == [
        ("Sales / Outreach", "2,000", "&gt;99%"), ("Other", "1.5", "&lt;1%"), ("Publishing", "0.001", "&lt;1%")
    ]  # fmt: skip
    empty = _usage_region(_usage({date(2026, 11, 1): {}}, []))
    assert re.findall(row, empty) == [] and "Nothing used yet this period. Each tool your specialists use" in empty
    assert "No specialist has used credits yet this period." in empty and ">—<" not in empty


def test_byok_page_masks_the_key_and_logs_who_changed_it(client, team):
    owner = client_for(client, team["owner"])
    response = owner.post(reverse("billing:settings_byok"), {"action": "set", "api_key": BYOK_KEY}, follow=True)
    html = response.content.decode()
    assert "sk-ant-…kkkk" in html and BYOK_KEY not in html
    bad = owner.post(reverse("billing:settings_byok"), {"action": "set", "api_key": "sk-live-oops"})
    assert bad.status_code == 422 and "does not look like an Anthropic API key" in bad.content.decode()
    owner.post(reverse("billing:settings_byok"), {"action": "remove"})
    assert not Workspace.objects.get(pk=team["ws"].pk).has_byok
    activity = owner.get(reverse("billing:settings_activity")).content.decode()
    assert "Set the BYOK Anthropic key" in activity and "Removed the BYOK Anthropic key" in activity


def test_payments_not_configured_is_a_clear_page_not_an_error(client, team):
    response = client_for(client, team["admin"]).post(reverse("billing:purchase", args=["top-up", "100k"]))
    assert response.status_code == 200
    assert "Payments are not configured yet" in response.content.decode()
    assert client.post(reverse("billing:purchase", args=["top-up", "nope"])).status_code == 404


def test_sign_up_creates_a_user_and_a_free_workspace(client):
    response = client.post(
        reverse("billing:signup"),
        {"email": "New@Example.test", "password": PASSWORD, "workspace_name": "Newco"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("billing:settings_billing")
    # The Free credits wait for the emailed link (issue 18, tests/billing/test_verification.py).
    assert 'data-testid="total-credits">0<' in response.content.decode()
    assert "Verify your email to start using your 10,000 free credits." in response.content.decode()
    ws = Workspace.objects.get(name="Newco")
    assert (ws.plan.key, ws.memberships.get().role, ws.memberships.get().user.username) == (
        "free",
        "owner",
        "new@example.test",
    )
    again = client.post(
        reverse("billing:signup"), {"email": "new@example.test", "password": PASSWORD, "workspace_name": "X"}
    )
    assert again.status_code == 422 and "already exists" in again.content.decode()
    weak = client.post(reverse("billing:signup"), {"email": "b@example.test", "password": "123", "workspace_name": "X"})
    assert weak.status_code == 422 and not Workspace.objects.filter(name="X").exists()


def test_the_sign_up_page_names_the_plan_a_sign_up_starts_on_from_its_row(client):
    page = client.get(reverse("billing:signup")).content.decode()
    assert "You start on the Free plan: 10,000 credits a month" in page  # the help page's Free plan
    Plan.objects.filter(key="free").update(name="Starter", allowance=2_500_500)
    page = client.get(reverse("billing:signup")).content.decode()
    assert "You start on the Starter plan: 2,500.5 credits a month" in page
    Plan.objects.filter(key="free").update(is_active=False)  # withdrawn: sign-up cannot use it, so it is not named
    assert 'data-testid="signup-plan"' not in client.get(reverse("billing:signup")).content.decode()
    Plan.objects.filter(key="free").update(key="retired")  # no such plan: the sentence is left out, no error
    response = client.get(reverse("billing:signup"))
    assert response.status_code == 200 and 'data-testid="signup-plan"' not in response.content.decode()


def test_invite_and_join_then_remove_but_never_the_last_owner(client, team, django_capture_on_commit_callbacks):
    owner = client_for(client, team["owner"])
    with django_capture_on_commit_callbacks(execute=True):
        owner.post(reverse("billing:settings_members"), {"email": "joiner@example.test", "role": "admin"})
    (message,) = mail.outbox
    link = message.body.split("Accept the invitation: ")[1].split()[0]
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    assert Invitation.objects.get().token_hash not in link  # only the hash is stored
    joiner = UserFactory(email="joiner@example.test")
    client.force_login(joiner)
    assert client.get(path).status_code == 200
    client.post(path)
    membership = Membership.objects.get(workspace=team["ws"], user=joiner)
    assert membership.role == "admin"
    assert client.get(path).status_code == 404  # used up
    client.force_login(team["owner"])
    owner_membership = Membership.objects.get(workspace=team["ws"], user=team["owner"])
    response = client.post(reverse("billing:member_remove", args=[owner_membership.pk]), follow=True)
    assert "at least one owner" in response.content.decode()
    client.post(reverse("billing:member_remove", args=[membership.pk]))
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_a_user_in_two_workspaces_switches_between_them(client, team):
    Membership.objects.create(workspace=team["other"], user=team["owner"], role="member")
    owner = client_for(client, team["owner"])
    assert "Team" in owner.get(reverse("billing:settings_billing")).content.decode()
    owner.post(reverse("billing:workspace_switch"), {"workspace": team["other"].pk})
    page = owner.get(reverse("billing:settings_billing")).content.decode()
    assert "selected>Elsewhere<" in page
    assert "Buy 100K" not in page  # a member there


def test_password_reset_sends_an_email_and_the_link_sets_a_new_password(client, team):
    done = client.post(reverse("password_reset"), {"email": "owner@example.test"}, follow=True).content.decode()
    assert "Check your email" in done and "we emailed a link" in done
    assert len(mail.outbox) == 1 and "/accounts/reset/" in mail.outbox[0].body
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert "Choose a new password" in form_page.content.decode()
    new = "a brand new passphrase 42"
    complete = client.post(form_page.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}, follow=True)
    assert "Password changed" in complete.content.decode()
    signed_in = client.post(reverse("login"), {"username": "owner@example.test", "password": new})
    assert signed_in.status_code == 302 and client.session.get("_auth_user_id") == str(team["owner"].pk)
    assert "not valid any more" in client.get(link, follow=True).content.decode()


def test_the_billing_page_runs_the_same_few_queries_however_long_the_ledger(client, team):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    owner = client_for(client, team["owner"])
    url = reverse("billing:settings_billing")

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert owner.get(url).status_code == 200
        return captured.captured_queries

    charge_batch(workspace=team["ws"], events=[{"action": "gmail-send", "idempotency_key": f"a{i}"} for i in range(5)])
    queries()  # the process's first view reads the plans and packs on offer with the catalog snapshot
    small = queries()
    charge_batch(
        workspace=team["ws"],
        events=[{"action": a, "idempotency_key": f"b{i}"} for i, a in enumerate(["gmail-send", "social-publish"] * 20)],
    )
    large = queries()
    # Session, the user with their memberships (workspace, plan and wallet), then one round trip that
    # carries the statements of a ledger page, the usage with the caps, the billing history's page and
    # the plan advisor's 30 days of usage.
    assert len(large) == len(small) == 3
    statements = [sql for q in large for sql in q["sql"].split(";\n")]
    assert len(statements) == 6
    [history] = [sql for sql in statements if "billing_purchase" in sql]
    assert "LIMIT" in history
    ledger_reads = [sql for sql in statements if "billing_ledgerentry" in sql]
    assert len(ledger_reads) == 1
    assert all("LIMIT" in sql for sql in ledger_reads), ledger_reads  # a page, never the whole ledger
    assert not any("SUM(" in sql.upper() and "billing_ledgerentry" in sql for sql in ledger_reads)


def test_activity_by_the_system_reads_sigora(client, team):
    from billing.services import cap_set

    cap_set(workspace=team["ws"], specialist="sourcing", daily_cap=credits(100))  # no actor: a job or the seeder
    page = client_for(client, team["member"]).get(reverse("billing:settings_activity")).content.decode()
    assert "Sigora" in page and "Sales / Sourcing: 100 credits/day" in page


def test_an_invitation_is_accepted_only_by_the_address_it_was_sent_to(client, team, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client_for(client, team["owner"]).post(
            reverse("billing:settings_members"), {"email": "x@example.test", "role": "member"}
        )
    path = "/" + mail.outbox[0].body.split("Accept the invitation: ")[1].split()[0].split("://", 1)[1].split("/", 1)[1]
    client.force_login(team["stranger"])
    assert "Sign in as x@example.test" in client.get(path).content.decode()
    response = client.post(path, follow=True)
    assert "This invitation is for x@example.test" in response.content.decode()
    assert not Membership.objects.filter(workspace=team["ws"], user=team["stranger"]).exists()


def test_date_filtered_pages_run_down_the_times_without_skipping_or_repeating(client, team):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from billing.selectors import LedgerFilters, ledger_page
    from billing.services import usage_event, usage_record

    ws = team["ws"]
    day_one = datetime(2026, 11, 20, 9, 0, tzinfo=ZoneInfo("UTC"))
    # A batch's entries share one timestamp: ties must be broken by id, page after page.
    usage_record(
        workspace=ws,
        events=[usage_event(action="claude-haiku", quantity=1, idempotency_key=f"a{i}") for i in range(60)],
        now=day_one,
    )
    for n in range(10):
        usage_record(
            workspace=ws,
            events=[usage_event(action="gmail-send", idempotency_key=f"b{n}")],
            now=day_one + timedelta(days=1, minutes=n),
        )
    zone = ZoneInfo("UTC")

    def walk(filters):
        seen, before = [], None
        while True:
            page = ledger_page(workspace_id=ws.pk, filters=filters, zone=zone, before=before)
            seen += page.entries
            if page.next_cursor is None:
                return seen
            before = page.next_cursor

    first_day = walk(LedgerFilters(date_from=day_one.date(), date_to=day_one.date()))
    assert len(first_day) == 60 and len({e.pk for e in first_day}) == 60
    assert [e.pk for e in first_day] == sorted((e.pk for e in first_day), reverse=True)
    both = walk(LedgerFilters(date_from=day_one.date(), date_to=day_one.date() + timedelta(days=1)))
    assert [e.idempotency_key for e in both[:10]] == [f"b{n}" for n in reversed(range(10))]
    assert len(both) == 70 and both[10:] == first_day
    # Through the page too: the load-more link carries the date filter and an id cursor.
    owner = client_for(client, team["owner"])
    query = {"date_from": "2026-11-20", "date_to": "2026-11-20"}
    html = owner.get(reverse("billing:transactions"), query, HTTP_HX_REQUEST="true").content.decode()
    cursor = re.search(r"before=(\d+)", html).group(1)
    more = owner.get(reverse("billing:transactions"), {**query, "before": cursor}, HTTP_HX_REQUEST="true")
    assert more.content.decode().count("<tr data-entry=") == 25


def test_memberships_come_with_workspace_plan_and_wallet_as_the_orm_reads_them(team, django_assert_num_queries):
    from billing.selectors import memberships_of

    Membership.objects.create(workspace=team["other"], user=team["owner"], role="member")
    charge(workspace=team["ws"], action="linkedin-dm", idempotency_key="dm")  # the wallet's day_spend (JSON) moves
    expected = list(
        Membership.objects.select_related("workspace", "workspace__plan", "workspace__wallet")
        .filter(user=team["owner"])
        .order_by("created_at", "id")
    )

    def fields(instance):
        return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}

    with django_assert_num_queries(1):
        found = memberships_of(user_id=team["owner"].pk)
        loaded = [(m, m.workspace, m.workspace.plan, m.workspace.wallet, m.workspace.wallet.workspace) for m in found]
    assert [m.pk for m in found] == [m.pk for m in expected]
    for (membership, workspace, plan, wallet, back), orm in zip(loaded, expected, strict=True):
        assert fields(membership) == fields(orm)
        assert fields(workspace) == fields(orm.workspace)
        assert fields(plan) == fields(orm.workspace.plan)
        assert fields(wallet) == fields(orm.workspace.wallet)
        assert back is workspace
    assert loaded[0][3].day_spend == {"outreach": credits(1_500)}


def test_the_signed_in_user_comes_with_the_same_memberships_in_one_query(team, django_assert_num_queries):
    from django.contrib.auth import get_user_model

    from billing.auth import MembershipsBackend
    from billing.selectors import memberships_of

    Membership.objects.create(workspace=team["other"], user=team["owner"], role="member")
    backend = MembershipsBackend()
    with django_assert_num_queries(1):
        user = backend.get_user(team["owner"].pk)
        read = [
            (m.pk, m.role, m.workspace.name, m.workspace.plan.key, m.workspace.wallet.plan_balance)
            for m in user.billing_memberships
        ]
    orm = get_user_model().objects.get(pk=team["owner"].pk)
    assert {f.attname: getattr(user, f.attname) for f in orm._meta.concrete_fields} == {
        f.attname: getattr(orm, f.attname) for f in orm._meta.concrete_fields
    }
    assert read == [
        (m.pk, m.role, m.workspace.name, m.workspace.plan.key, m.workspace.wallet.plan_balance)
        for m in memberships_of(user_id=orm.pk)
    ]
    assert len(read) == 2
    loner = UserFactory()
    assert backend.get_user(loner.pk).billing_memberships == []  # signed in, in no workspace
    assert backend.get_user(10**9) is None and backend.get_user("not-an-id") is None
    loner.is_active = False
    loner.save()
    assert backend.get_user(loner.pk) is None  # deactivated: signed out, as ModelBackend does


def _rows(html):
    return {
        int(pk): re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cells)).strip()
        for pk, cells in re.findall(r'<tr data-entry="(\d+)">(.*?)</tr>', html, re.S)
    }


def test_transaction_rows_show_each_kind_of_entry_on_the_readers_clock(client, team):
    from datetime import UTC, datetime

    from django.db import transaction

    from billing.services import entry_post, wallet_lock

    ws = team["ws"]
    at = datetime(2026, 11, 20, 9, 5, tzinfo=UTC)
    with transaction.atomic():
        adjustment = entry_post(
            wallet_lock(workspace_id=ws.pk),
            kind="adjustment",
            topup_delta=credits(2_000),
            plan_delta=-credits(9_000),
            idempotency_key="adj",
            reason="<b>goodwill</b> & thanks",
            now=at,
        )
    one_call = charge(workspace=ws, action="linkedin-dm", idempotency_key="dm")  # 1,500: the plan's last 1,000 first
    byok_set(workspace=ws, api_key=BYOK_KEY)
    tokens = charge(workspace=ws, action="claude-haiku", quantity=1_234, idempotency_key="ai", specialist="publishing")
    owner = client_for(client, team["owner"])
    client.cookies["tz"] = "Asia/Tokyo"
    html = owner.get(reverse("billing:transactions"), HTTP_HX_REQUEST="true").content.decode()
    rows = _rows(html)
    reason = "&lt;b&gt;goodwill&lt;/b&gt; &amp; thanks"  # escaped, once
    assert rows[adjustment.pk] == f"Nov 20, 18:05 — Adjustment {reason} -7,000 Plan + top-up 3,000"
    assert "<b>goodwill" not in html and "&amp;amp;" not in html
    assert '<time datetime="2026-11-20T18:05:00+09:00">' in html
    assert rows[one_call.pk].endswith("Sales / Outreach LinkedIn DM via Unipile 1 call -1,500 Plan + top-up 1,500")
    assert rows[tokens.pk].endswith("Marketing / Publishing Claude Haiku BYOK 1,234 tokens 0 (list 123.4) — 1,500"), (
        rows[tokens.pk]
    )
    assert html.count('class="num credit">') == 1 and 'class="num credit">+10,000<' in html  # only the plan grant


def test_filters_come_from_the_catalog_and_a_retired_tool_still_filters(client, team):
    from billing.catalog_cache import catalog_invalidate
    from billing.models import Action

    charge(workspace=team["ws"], action="computer-use", idempotency_key="old")
    Action.objects.filter(key="computer-use").update(is_active=False)
    catalog_invalidate()
    owner = client_for(client, team["owner"])
    url = reverse("billing:transactions")
    page = owner.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert '<option value="" selected>All tools</option>' in page and '<option value="gmail-send">' in page
    assert 'value="computer-use"' not in page  # retired: no longer offered
    retired = owner.get(url, {"action": "computer-use"}, HTTP_HX_REQUEST="true").content.decode()
    assert len(_rows(retired)) == 1 and "Computer Use browser action</td>" in retired
    assert '<option value="computer-use" selected>Computer Use browser action</option>' in retired
    bad = owner.get(url, {"action": "nope", "date_from": "2026-13-01"}, HTTP_HX_REQUEST="true").content.decode()
    for name in ("action", "date_from"):
        assert f'aria-invalid="true" aria-describedby="id_{name}_error"' in bad
    assert '<span id="id_action_error">Select a valid choice. That choice is not one of the' in bad
    assert '<span id="id_date_from_error">Enter a valid date.</span>' in bad
    assert 'value="2026-13-01"' in bad and len(_rows(bad)) == 2  # unfiltered, as the message says


def test_the_usage_chart_escapes_tool_names(client, team):
    from billing.catalog_cache import catalog_invalidate
    from billing.models import Action

    Action.objects.filter(key="gmail-send").update(label='Mail <script>alert("x")</script>')
    catalog_invalidate()
    charge(workspace=team["ws"], action="gmail-send", idempotency_key="m")
    html = client_for(client, team["owner"]).get(reverse("billing:usage"), HTTP_HX_REQUEST="true").content.decode()
    assert "<script>" not in html
    assert "· Mail &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;: 200 credits</title></rect>" in html
    assert "200 credits (Mail &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; 200)" in html  # the day's aria-label
    assert '<li><svg class="swatch"' in html and "<span>Mail &lt;script&gt;" in html  # the legend


def test_a_refused_cap_names_its_errors_for_assistive_technology(client, team):
    owner = client_for(client, team["owner"])
    bad = owner.post(reverse("billing:caps"), {"specialist": "nobody", "daily_cap": "-5"}, HTTP_HX_REQUEST="true")
    html = bad.content.decode()
    assert bad.status_code == 422
    assert 'aria-invalid="true" aria-describedby="cap-specialist_error" id="cap-specialist"' in html
    described = 'aria-describedby="cap-daily_cap_helptext cap-daily_cap_error"'
    assert f'aria-invalid="true" {described} id="cap-daily_cap"' in html
    assert '<span id="cap-specialist_error">Select a valid choice.' in html
    assert '<span id="cap-daily_cap_error">Enter 0 or more credits.</span>' in html
    assert 'value="-5"' in html and '<span class="muted small" id="cap-daily_cap_helptext">' in html


def test_the_offers_read_matches_the_catalog_models(db):
    from billing.models import Plan, TopUpPack
    from billing.selectors import offers, pack_offers

    TopUpPack.objects.create(key="tiny", amount=credits(1_000), price_cents=500, sort_order=0)
    TopUpPack.objects.filter(key="1m").update(is_active=False)
    found = offers()
    plans = Plan.objects.filter(is_active=True)
    assert [(p.pk, p.key, p.name, p.price_cents, p.allowance, p.per_seat) for p in found.plans] == [
        (p.pk, p.key, p.name, p.price_cents, p.allowance, p.per_seat) for p in plans
    ]
    assert [(o.pack.key, o.pack.amount, o.pack.price_cents, o.discount_percent) for o in found.packs] == [
        (o.pack.key, o.pack.amount, o.pack.price_cents, o.discount_percent) for o in pack_offers()
    ]
    assert found.packs[0].pack.key == "tiny" and "1m" not in [o.pack.key for o in found.packs]


def test_the_offers_are_read_once_per_catalog_snapshot_and_follow_a_reload(db, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from billing import catalog_cache as catalog_module
    from billing.models import TopUpPack
    from billing.selectors import offers

    first = offers()
    with CaptureQueriesContext(connection) as captured:
        assert offers() is first  # the same snapshot: no query
    assert captured.captured_queries == []
    TopUpPack.objects.filter(key="50k").update(price_cents=1_234)
    assert offers() is first  # until the catalog is reloaded, the page shows what it has
    # A reload (the TTL passing, or catalog_invalidate() in the process that made the change).
    monkeypatch.setattr(catalog_module, "TTL_SECONDS", -1.0)
    assert [o.pack.price_cents for o in offers().packs if o.pack.key == "50k"] == [1_234]


def test_a_purchase_row_links_its_receipt_and_nothing_else_becomes_a_link(client, team):
    from django.db import transaction
    from django.utils import timezone

    from billing.services import entry_post, wallet_lock

    ws = team["ws"]
    with transaction.atomic():
        paid = entry_post(
            wallet_lock(workspace_id=ws.pk),
            kind="top_up",
            topup_delta=credits(100_000),
            idempotency_key="paid",
            metadata={"receipt_url": "https://pay.example.test/receipts/ch_1?a=1&b=2"},
            now=timezone.now(),
        )
        odd = entry_post(
            wallet_lock(workspace_id=ws.pk),
            kind="adjustment",
            topup_delta=credits(1),
            idempotency_key="odd",
            reason="test",
            metadata={"receipt_url": "javascript:alert(1)"},
            now=timezone.now(),
        )
    html = client_for(client, team["owner"]).get(reverse("billing:transactions"), HTTP_HX_REQUEST="true").content
    rows = html.decode().split("<tr data-entry=")
    (paid_row,) = [r for r in rows if r.startswith(f'"{paid.pk}"')]
    (odd_row,) = [r for r in rows if r.startswith(f'"{odd.pk}"')]
    assert '<a href="https://pay.example.test/receipts/ch_1?a=1&amp;b=2">Receipt</a>' in paid_row
    assert "<a " not in odd_row and "javascript" not in odd_row


def _usage(by_day: dict, tools: list[tuple[str, int]]):
    """A period's usage as the selector would give it: ``tools`` as (key, credits), busiest first."""
    from billing.selectors import ToolUsage, UsageSummary

    days = sorted(by_day)
    return UsageSummary(
        start=days[0], end=days[-1], today=days[-1], days=days, by_day=by_day,
        tools=[
            ToolUsage(key, key.title(), amount, amount, 1, 1, unit="calls", action_id=n)
            for n, (key, amount) in enumerate(tools, start=1)
        ],
        specialists=[], total=sum(amount for _, amount in tools), byok_saved=0, followups_skipped=0,
        reply_saved=0, runs_out_on=None, total_runs_out_on=None, plan_balance=0, topup_balance=0,
        spent_today={}, daily_caps={},
    )  # fmt: skip


def test_reads_sent_together_answer_as_each_read_alone_in_one_round_trip(team):
    from zoneinfo import ZoneInfo

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from billing import selectors
    from billing.models import Wallet

    ws = team["ws"]
    charge_batch(workspace=ws, events=[{"action": "gmail-send", "idempotency_key": f"t{i}"} for i in range(30)])
    wallet = Wallet.objects.select_related("workspace").get(workspace=ws)
    today = timezone.now().date()
    zone = ZoneInfo("UTC")
    filters = selectors.LedgerFilters(action="gmail-send")

    def reads():
        return (
            selectors.usage_read(wallet=wallet, today=today),
            selectors.ledger_read(workspace_id=ws.pk, filters=filters, zone=zone, limit=10),
            selectors.ledger_read(workspace_id=ws.pk, filters=filters, zone=zone, before=10**12, limit=3),
        )

    alone = [read.run() for read in reads()]
    with CaptureQueriesContext(connection) as captured:
        together = selectors.reads_run(*reads())
    assert len(captured.captured_queries) == 1
    assert together == alone
    usage, page, short = together
    assert usage.total == credits(200 * 30) and len(page.entries) == 10 and page.next_cursor is not None
    assert [e.pk for e in short.entries] == [e.pk for e in page.entries[:3]]


def _offer_forms(html: str) -> list[tuple[str, str]]:
    """(action, CSRF token) of each form in the Top up or upgrade region."""
    import re

    region = html[html.index('<section id="offers"') : html.index('<section id="caps"')]
    form = r'<form class="card offer[^"]*" method="post" action="([^"]+)">'
    token = r'<input type="hidden" name="csrfmiddlewaretoken" value="([^"]+)">'
    return re.findall(form + token, region)


def test_every_reader_gets_the_offers_with_their_own_working_csrf_token(team):
    from django.test import Client

    url = reverse("billing:settings_billing")
    pages = {}
    for who in ("owner", "admin", "member"):
        reader = Client(enforce_csrf_checks=True)
        reader.force_login(team[who])
        pages[who] = (reader, reader.get(url).content.decode())
    for who, (reader, html) in pages.items():
        forms = _offer_forms(html)
        assert len(forms) == 8, who  # four packs, four plans
        # One token on the whole page: the offers' forms, the other forms and htmx's header.
        everywhere = set(re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', html))
        assert everywhere == {forms[0][1]} and f'"X-CSRFToken": "{forms[0][1]}"' in html, who
        # The token in the cards is this reader's: a POST with it passes the CSRF check.
        action, token = forms[0]
        assert action == reverse("billing:purchase", args=["top-up", "50k"])
        answer = reader.post(action, {"csrfmiddlewaretoken": token})
        assert b"CSRF verification failed" not in answer.content
        assert (answer.status_code == 403) == (who == "member"), (who, answer.status_code)  # members may not buy
        forged = reader.post(action, {"csrfmiddlewaretoken": token[:-4] + "abcd"})
        assert forged.status_code == 403 and b"CSRF verification failed" in forged.content
    # Members see the cards without the buttons, though an owner's page was drawn first.
    assert "Buy 50K" in pages["owner"][1] and "Buy 50K" in pages["admin"][1]
    assert "Buy 50K" not in pages["member"][1] and "Only the workspace's owners and admins" in pages["member"][1]


def test_a_pack_price_change_shows_on_the_offers_at_once(client, team, django_capture_on_commit_callbacks):
    from billing.models import TopUpPack
    from billing.services import pack_update

    owner = client_for(client, team["owner"])
    url = reverse("billing:settings_billing")
    assert "$9" in owner.get(url).content.decode() and "$9.50" not in owner.get(url).content.decode()
    pack = TopUpPack.objects.get(key="50k")
    with django_capture_on_commit_callbacks(execute=True):  # the catalog is read again once the change commits
        pack_update(pack_id=pack.pk, actor=UserFactory(is_staff=True, is_superuser=True), changes={"price_cents": 9_50})
    assert "$9.50" in owner.get(url).content.decode()


@pytest.mark.parametrize(
    ("page", "label"),
    [
        ("billing:settings_billing", "Billing &amp; Credits"),
        ("billing:settings_spending", "Auto top-up &amp; budget"),
        ("billing:settings_byok", "BYOK Anthropic Key"),
        ("billing:settings_members", "Members"),
        ("api_keys:settings_api_keys", "API keys"),
        ("billing:settings_activity", "Activity"),
        ("billing:settings_two_factor", "Two-factor sign-in"),
    ],
)
def test_the_settings_navigation_marks_the_page_you_are_on_and_only_it(client, team, page, label):
    html = client_for(client, team["owner"]).get(reverse(page)).content.decode()
    start = html.index("<nav>")  # the settings sidebar's (the header's has a class)
    nav = html[start : html.index("</nav>", start)]
    assert nav.count("<a ") == 7
    assert nav.count('aria-current="page"') == 1
    assert f'<a href="{reverse(page)}" aria-current="page">{label}</a>' in nav


def test_pages_link_the_static_files_as_the_static_tag_would_and_follow_a_new_static_url(client, settings):
    from django.templatetags.static import static

    files = ("css/app.css", "favicon.svg", "vendor/htmx-2.0.11.min.js", "js/app.js")
    html = client.get(reverse("login")).content.decode()
    assert all(f'"{static(name)}"' in html for name in files)
    settings.STATIC_URL = "/assets/"  # a new storage: the cached URLs are not reused
    html = client.get(reverse("login")).content.decode()
    assert all(f'"/assets/{name}"' in html for name in files)


SECRET_NOTE = "STAFF-ONLY-7f3a9c: threatened a chargeback, ticket #4411"


def test_the_customer_reads_a_staff_adjustments_description_and_never_its_internal_note(client, team, settings):
    """Made through the admin's two steps; then every place the customer reads their ledger."""
    from api.credentials import api_key_create
    from api.ratelimit import rate_limit_reset
    from billing.models import LedgerEntry
    from tests.admin.conftest import make_person

    ws = team["ws"]
    adjust = reverse("admin:billing_workspace_adjust", args=[ws.pk])
    client_for(client, make_person("staff_with_permission"))
    token = re.search(r'name="token" value="([0-9a-f]{32})"', client.get(adjust).content.decode()).group(1)
    post = {"amount": "250", "bucket": "top_up", "token": token}
    post |= {"description": "Goodwill credit for the outage", "internal_note": SECRET_NOTE}
    review = client.post(adjust, post).content.decode()
    assert "Goodwill credit for the outage" in review and "threatened a chargeback" in review  # staff see both
    assert client.post(adjust, {**post, "confirm": "1"}).status_code == 302
    entry = LedgerEntry.objects.get(workspace=ws, kind="adjustment")
    assert (entry.reason, entry.internal_note) == ("Goodwill credit for the outage", SECRET_NOTE)

    owner = client_for(client, team["owner"])
    page = owner.get(reverse("billing:settings_billing")).content.decode()
    fragment = owner.get(reverse("billing:transactions"), {"kind": "adjustment"}, HTTP_HX_REQUEST="true")
    exported = b"".join(owner.get(reverse("billing:transactions_csv")).streaming_content).decode()
    settings.API_RATE_LIMIT_REDIS_URL = ""  # count in-process, as the API's own tests do
    rate_limit_reset()
    _, secret = api_key_create(workspace=ws, name="Our scripts", actor=None)
    api = client.get("/api/v1/transactions", {"kind": "adjustment"}, headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200
    row = next(csv.DictReader(io.StringIO(exported)))  # newest first: the adjustment
    assert row["Kind"] == "Adjustment" and row["Description"] == "Goodwill credit for the outage"
    assert "— Adjustment Goodwill credit for the outage +250 Top-up" in _rows(fragment.content.decode())[entry.pk]
    assert [e["reason"] for e in api.json()["entries"]] == ["Goodwill credit for the outage"]
    for text in (page, fragment.content.decode(), exported, api.content.decode()):
        assert "Goodwill credit for the outage" in text
        assert "STAFF-ONLY" not in text and "chargeback" not in text
