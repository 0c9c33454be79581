"""What people see and do on the settings pages, in a real browser against the live server."""

from __future__ import annotations

import csv
import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from billing.models import Membership
from billing.services import charge, charge_batch
from tests.browser.conftest import PASSWORD, path_of
from tests.factories import UserFactory, WorkspaceFactory

# The live server reads what the tests commit; the catalog the migrations loaded is restored
# after each test's flush (serialized_rollback).
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

POLL_WAIT = 8_000  # the balance region polls every 4 s


def mark_page(page):
    """Tag the document, so a later check can tell the page was not reloaded since."""
    page.evaluate("window.__marker = 1")


def assert_not_reloaded(page):
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"


@pytest.fixture
def owner_ws(db):
    owner = UserFactory(email="owner@example.test")
    return owner, WorkspaceFactory(owner=owner, name="Acme")


def test_sign_up_lands_on_billing_with_the_free_plan_then_sign_out_and_back_in(page):
    page.goto("/accounts/signup/")
    page.get_by_label("Email").fill("new@example.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Workspace name").fill("Newco")
    page.get_by_role("button", name="Sign up").click()

    expect(page).to_have_url(re.compile(r"/settings/billing/$"))
    expect(page.get_by_role("heading", name="Billing & Credits", level=1)).to_be_visible()
    # The Free credits wait for the emailed link (issue 18): the page says so.
    expect(page.get_by_test_id("total-credits")).to_have_text("0")
    expect(page.get_by_test_id("verify-email")).to_contain_text("Verify your email to start using your 10,000 free")
    link = re.search(r"http://\S+(/accounts/verify/\S+/)", mail.outbox[-1].body).group(1)
    page.goto(link)
    page.get_by_role("button", name="Verify my email").click()
    expect(page.get_by_role("heading", name="Your email address is verified")).to_be_visible()
    page.goto("/settings/billing/")
    expect(page.get_by_test_id("total-credits")).to_have_text("10,000")
    expect(page.get_by_test_id("verify-email")).to_have_count(0)
    expect(page.locator("#balance .plan-badge")).to_have_text("Free")
    expect(page.locator("#workspace-switch option:checked")).to_have_text("Newco")
    expect(page.locator(".topbar")).to_contain_text("new@example.test")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.locator(".topbar")).not_to_contain_text("new@example.test")
    page.goto("/settings/billing/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))

    page.get_by_label("Email").fill("new@example.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/settings/billing/$"))
    expect(page.get_by_test_id("total-credits")).to_have_text("10,000")


def test_a_wrong_password_is_refused_on_the_sign_in_page(page, owner_ws):
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("owner@example.test")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert path_of(page) == "/accounts/login/"


def test_the_balance_moves_after_a_charge_made_elsewhere_without_a_reload(browsers, owner_ws):
    owner, workspace = owner_ws
    page = browsers.page(user=owner)
    page.goto("/settings/billing/")
    expect(page.get_by_test_id("total-credits")).to_have_text("10,000")
    mark_page(page)

    charge(workspace=workspace.pk, action="linkedin-dm", idempotency_key="outside-1")

    expect(page.get_by_test_id("total-credits")).to_have_text("8,500", timeout=POLL_WAIT)
    expect(page.get_by_test_id("plan-balance")).to_have_text("8,500")
    expect(page.get_by_test_id("topup-balance")).to_have_text("0")
    expect(page.get_by_test_id("bucket-used")).to_have_text("1,500")
    assert_not_reloaded(page)


def test_transactions_filter_by_tool_load_more_and_export_the_filtered_csv(browsers, owner_ws):
    owner, workspace = owner_ws
    haiku = [{"action": "claude-haiku", "quantity": 7, "idempotency_key": f"h{i}"} for i in range(60)]
    gmail = [{"action": "gmail-send", "idempotency_key": f"g{i}"} for i in range(10)]
    charge_batch(workspace=workspace.pk, events=haiku)
    charge_batch(workspace=workspace.pk, events=gmail)  # the newest, so they head the unfiltered list

    page = browsers.page(user=owner)
    page.goto("/settings/billing/")
    table = page.get_by_test_id("transactions")
    rows = table.locator("tr[data-entry]")
    other_rows = rows.filter(has_not_text="Claude Haiku")
    expect(rows).to_have_count(25)
    expect(rows.filter(has_text="Cold email send via Gmail")).to_have_count(10)
    mark_page(page)

    page.locator("#transactions").get_by_label("Tool").select_option("claude-haiku")

    expect(other_rows).to_have_count(0)
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text("0.7")
    assert_not_reloaded(page)

    page.get_by_role("link", name="Load more").click()
    expect(rows).to_have_count(50)
    expect(other_rows).to_have_count(0)
    page.get_by_role("link", name="Load more").click()
    expect(rows).to_have_count(60)
    expect(page.get_by_role("link", name="Load more")).to_have_count(0)
    assert_not_reloaded(page)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert re.fullmatch(rf"sigora-transactions-{workspace.pk}-\d{{8}}\.csv", download.suggested_filename)
    with open(download.path(), newline="", encoding="utf-8") as f:
        exported = list(csv.DictReader(f))
    assert len(exported) == 60
    assert {row["Tool"] for row in exported} == {"Claude Haiku"}
    assert {row["Credits"] for row in exported} == {"-0.7"}
    assert {row["Idempotency key"] for row in exported} == {f"h{i}" for i in range(60)}


def test_byok_key_is_saved_masked_and_removed(browsers, owner_ws):
    owner, _workspace = owner_ws
    key = "sk-ant-api03-" + "Zx9_" * 8 + "Q7wK"
    page = browsers.page(user=owner)
    page.goto("/settings/byok/")
    status = page.get_by_test_id("byok-status")
    expect(status).to_contain_text("No key set")
    expect(page.get_by_role("button", name="Remove key")).to_have_count(0)

    page.get_by_label("Anthropic API key").fill("sk-ant-too short")
    page.get_by_role("button", name="Save key").click()
    expect(page.get_by_role("alert")).to_contain_text("does not look like an Anthropic API key")
    expect(status).to_contain_text("No key set")
    assert "sk-ant-too short" not in page.content()

    page.get_by_label("Anthropic API key").fill(key)
    page.get_by_role("button", name="Save key").click()
    expect(status).to_contain_text("A key is set: sk-ant-…Q7wK")
    assert key not in page.content()
    assert key[7:-4] not in page.content()
    expect(page.get_by_label("Replace the key")).to_have_value("")

    page.goto("/settings/activity/")
    expect(page.get_by_test_id("activity")).to_contain_text("sk-ant-…Q7wK")
    assert key not in page.content()

    page.goto("/settings/byok/")
    page.get_by_role("button", name="Remove key").click()
    expect(status).to_contain_text("No key set")
    expect(page.get_by_role("button", name="Remove key")).to_have_count(0)


def test_a_daily_cap_change_shows_in_the_caps_table_without_a_reload(browsers, owner_ws):
    owner, _workspace = owner_ws
    page = browsers.page(user=owner)
    page.goto("/settings/billing/")
    outreach = page.get_by_test_id("caps").locator("tr[data-specialist=outreach]")
    expect(outreach.locator("td").nth(0)).to_have_text("Sales / Outreach")
    expect(outreach.locator("td").nth(2)).to_have_text("no cap")
    mark_page(page)

    set_cap(page, "outreach", "5000")

    expect(outreach.locator("td").nth(2)).to_have_text("5,000")
    expect(outreach.get_by_role("meter")).to_have_attribute("aria-valuenow", "0")
    assert_not_reloaded(page)


def set_cap(page, specialist: str, figure: str):
    caps = page.locator("#caps")
    caps.locator("select[name=specialist]").select_option(specialist)
    caps.locator("input[name=daily_cap]").fill(figure)
    caps.get_by_role("button", name="Save cap").click()


def test_an_invalid_cap_is_refused_in_place(browsers, owner_ws):
    owner, _workspace = owner_ws
    page = browsers.page(user=owner)
    page.goto("/settings/billing/")
    mark_page(page)
    with page.expect_response("**/settings/billing/caps/") as response_info:
        set_cap(page, "outreach", "lots")
    assert response_info.value.status == 422
    expect(page.locator("#caps").get_by_role("alert")).to_contain_text("Enter a number of credits", timeout=2_000)
    assert_not_reloaded(page)


def test_a_cap_saved_in_place_leaves_no_stale_message_for_the_next_page(browsers, owner_ws):
    owner, _workspace = owner_ws
    page = browsers.page(user=owner)
    page.goto("/settings/billing/")
    set_cap(page, "outreach", "5000")
    expect(page.get_by_test_id("caps").locator("tr[data-specialist=outreach] td").nth(2)).to_have_text("5,000")
    page.goto("/settings/byok/")
    expect(page.get_by_role("heading", name="BYOK Anthropic Key")).to_be_visible()
    expect(page.get_by_text("Daily cap saved.")).to_have_count(0, timeout=1_000)


def test_an_invitee_signs_up_through_the_link_and_joins_as_admin(browsers, owner_ws):
    owner, workspace = owner_ws
    page = browsers.page(user=owner)
    page.goto("/settings/members/")
    page.get_by_label("Email").fill("invitee@example.test")
    page.get_by_label("Role").select_option("admin")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invitation sent to invitee@example.test")
    expect(page.locator("main")).to_contain_text("Invitations pending")

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["invitee@example.test"]
    link = re.search(r"https?://\S+/invitations/[\w-]+/", message.body).group(0)
    assert link.startswith(browsers.base_url)

    invitee = browsers.page()  # a fresh context: nobody signed in
    invitee.goto(link)
    expect(invitee.get_by_role("heading", name="Join Acme")).to_be_visible()
    expect(invitee.locator("main")).to_contain_text("admin")
    invitee.get_by_role("link", name="Create an account").click()
    expect(invitee).to_have_url(re.compile(r"/accounts/signup/\?next="))
    # The address is the invitation's, and there is no workspace of one's own to name.
    expect(invitee.get_by_label("Email")).to_have_value("invitee@example.test")
    expect(invitee.get_by_label("Email")).not_to_be_editable()
    expect(invitee.get_by_label("Workspace name")).to_have_count(0)
    invitee.get_by_label("Password").fill(PASSWORD)
    invitee.get_by_role("button", name="Create account and join").click()

    expect(invitee).to_have_url(re.compile(r"/settings/billing/$"))
    expect(invitee.get_by_role("status")).to_contain_text("Welcome to Acme")
    expect(invitee.locator("#workspace-switch")).to_have_value(str(workspace.pk))
    expect(invitee.locator("#workspace-switch option")).to_have_text(["Acme"])  # in that workspace only
    expect(invitee.locator(".sidebar")).to_contain_text("Your role: Admin")

    page.goto("/settings/members/")
    row = page.get_by_test_id("members").locator("tr", has_text="invitee@example.test")
    expect(row).to_contain_text("Admin")
    expect(page.locator("main")).not_to_contain_text("Invitations pending")


def test_a_member_sees_no_buy_cap_key_or_invite_controls(browsers, owner_ws):
    _owner, workspace = owner_ws
    member = UserFactory(email="member@example.test")
    Membership.objects.create(workspace=workspace, user=member, role=Membership.Role.MEMBER)
    page = browsers.page(user=member)

    page.goto("/settings/billing/")
    expect(page.locator(".sidebar")).to_contain_text("Your role: Member")
    expect(page.get_by_test_id("total-credits")).to_have_text("10,000")
    expect(page.locator("#offers")).to_contain_text("Only the workspace's owners and admins can buy credits")
    expect(page.get_by_role("button", name=re.compile(r"^(Buy|Switch to)"))).to_have_count(0)
    expect(page.get_by_role("button", name="Save cap")).to_have_count(0)
    expect(page.locator("#caps input[name=daily_cap]")).to_have_count(0)

    # The controls are not merely hidden: the server refuses the member's POST.
    status = page.evaluate(
        """async () => {
            const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
            const body = new URLSearchParams({specialist: "outreach", daily_cap: "1"});
            const r = await fetch("/settings/billing/caps/", {method: "POST", body, headers: {"X-CSRFToken": token}});
            return r.status;
        }"""
    )
    assert status == 403

    page.goto("/settings/byok/")
    expect(page.get_by_test_id("byok-status")).to_contain_text("No key set")
    expect(page.get_by_role("button", name=re.compile("key"))).to_have_count(0)
    expect(page.locator("input[name=api_key]")).to_have_count(0)

    page.goto("/settings/members/")
    expect(page.get_by_test_id("members")).to_contain_text("member@example.test")
    expect(page.get_by_role("button", name="Send invitation")).to_have_count(0)
    expect(page.get_by_role("button", name="Remove")).to_have_count(0)


def test_buying_a_pack_explains_payments_are_not_configured(browsers, owner_ws):
    owner, _workspace = owner_ws
    page = browsers.page(user=owner)
    page.goto("/settings/billing/")
    page.get_by_role("button", name="Buy 100K", exact=True).click()
    expect(page.get_by_role("heading", name="Payments are not configured yet")).to_be_visible()
    expect(page.locator("main")).to_contain_text("nothing was charged")
    page.get_by_role("link", name="Back to Billing & Credits").click()
    expect(page.get_by_test_id("total-credits")).to_have_text("10,000")
