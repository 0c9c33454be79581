"""The whole site as the demo shows it, with names chosen to break layouts: for the phone-width test and the
screenshots, which visit every page a person can reach.

``demo_site_build`` runs ``seed_demo`` in the live server's test database, then makes the visible names as long
as their columns allow (120 characters) and unbreakable (no space, no hyphen): the workspace, an API key, a
teammate's email, a pending invitation's address. ``Visit.open`` brings a page to the state a person sees it in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.core.management import call_command
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from playwright.sync_api import expect

from api.credentials import api_key_create, api_key_revoke
from billing.management.commands.seed_demo import DEMO_TEAMMATE, DEMO_WORKSPACE
from billing.models import LedgerEntry, Membership, Plan, Workspace
from billing.services import byok_set, invitation_create
from tests.factories import UserFactory

WIDE = {"width": 1366, "height": 900}  # the desktop the pages are reviewed at
LONG_NAME = ("AcmeGrowthMarketingOperations" * 5)[:120]  # a workspace or API key name at its longest
LONG_EMAIL = ("anamarketingoperations" * 5)[:107] + "@example.test"  # 120 characters, nowhere to break a line
INVITEE_EMAIL = ("invitedgrowthlead" * 7)[:107] + "@example.test"


@dataclass(frozen=True)
class Visit:
    """One page in the state a person sees it: who is signed in, where they go, what they do there first."""

    name: str
    path: str
    user: object | None = None
    then: Callable | None = field(default=None, compare=False)  # e.g. click "Load more"
    shows: tuple[str, ...] = ()  # the long names the page must show, so a test of their layout cannot pass idly

    def open(self, browsers, viewport):
        page = browsers.page(viewport=viewport, user=self.user)
        page.goto(self.path)
        if self.then is not None:
            self.then(page)
        expect(page.locator("h1").first).to_be_visible()
        page.evaluate("document.fonts.ready")
        return page


def _load_more_transactions(page) -> None:
    """The transactions' next page, loaded by htmx into the table: its rows must fit as the first ones do."""
    rows = page.locator("[data-testid=transactions] tbody tr[data-entry]")
    before = rows.count()
    page.get_by_role("link", name="Load more").click()
    expect(rows).not_to_have_count(before)


def _buy_without_payments(page) -> None:
    """Buy a pack where no payment provider is configured: the page that says nothing was charged."""
    page.get_by_role("button", name="Buy 100K", exact=True).click()
    expect(page).to_have_url("/settings/billing/top-up/100k/")


def _post_as_member(page) -> None:
    """A member sends the BYOK form anyway (an old tab, a crafted request): the 403 page."""
    page.evaluate(
        """() => {
            const form = document.createElement("form");
            form.method = "post";
            const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
            form.innerHTML = `<input name="csrfmiddlewaretoken" value="${token}">`
                + `<input name="action" value="set"><input name="api_key" value="sk-ant-x">`;
            document.body.appendChild(form);
            form.submit();
        }"""
    )
    expect(page.locator("h1")).to_have_text("Not allowed")


def _swagger_drawn(page) -> None:
    """The API reference once Swagger UI has drawn it, with an operation open (its examples, its responses)."""
    expect(page.locator(".swagger-ui section.models")).to_be_visible(timeout=15_000)  # a 1.5 MB bundle to run
    charge = page.locator(".opblock-post", has_text="Charge one usage event")
    charge.locator(".opblock-summary").click()
    expect(charge).to_contain_text("insufficient_credits")


def _server_error(page) -> None:
    """The 500 page, served where the live server would (no URL of the site fails on purpose). Served as a 200:
    the browser fixture counts every 5xx as a failure, and the layout does not depend on the status."""
    page.route("**/server-error/", lambda route: route.fulfill(body=render_to_string("500.html")))
    page.goto("/server-error/")


def _database_down(page) -> None:
    """The 503 page a page answers while the database cannot (billing/views/unavailable.py), served as the 500 is."""
    page.route("**/database-down/", lambda route: route.fulfill(body=render_to_string("503.html")))
    page.goto("/database-down/")


@dataclass(frozen=True)
class DemoSite:
    owner: object  # of the demo workspace
    visits: list[Visit]  # every page, in the state each is seen in


def demo_site_build(base_url: str) -> DemoSite:
    """Seed the demo with the longest names, and list every page of the site as the demo's people see them."""
    call_command("seed_demo", "--force", verbosity=0)
    workspace = Workspace.objects.get(name=DEMO_WORKSPACE)
    owner = Membership.objects.get(workspace=workspace, role=Membership.Role.OWNER).user
    teammate = Membership.objects.get(workspace=workspace, user__username=DEMO_TEAMMATE[0]).user
    teammate.username = teammate.email = LONG_EMAIL
    teammate.save()
    workspace.name = LONG_NAME
    workspace.save(update_fields=["name"])
    member = UserFactory(email="viewer@example.test")
    Membership.objects.create(workspace=workspace, user=member, role=Membership.Role.MEMBER)
    byok_set(workspace=workspace, api_key="sk-ant-api03-" + "x" * 40 + "DEMO", actor=owner)
    api_key_create(workspace=workspace, name=LONG_NAME, actor=teammate)  # listed, and recorded in Activity
    api_key_create(workspace=workspace, name="Zapier (marketing automations)", actor=owner)
    retired, _ = api_key_create(workspace=workspace, name="Old CI runner", actor=owner)
    api_key_revoke(api_key=retired, actor=owner)
    mail.outbox = []
    invitation_create(
        workspace=workspace, email=INVITEE_EMAIL, role="admin", invited_by=owner, link_base=f"{base_url}/invitations"
    )
    invitation_path = next(word for word in mail.outbox[-1].body.split() if "/invitations/" in word)
    invitation_path = invitation_path.removeprefix(base_url)
    reset_path = f"/accounts/reset/{urlsafe_base64_encode(force_bytes(owner.pk))}/"
    reset_path += f"{default_token_generator.make_token(owner)}/"
    too_many_fields = "/settings/billing/?" + "&".join(f"f{n}=1" for n in range(1_100))
    visits = [
        Visit("billing", "/settings/billing/", owner, shows=(LONG_NAME,)),
        Visit("billing-more", "/settings/billing/", owner, then=_load_more_transactions),
        Visit("billing-teammate", "/settings/billing/", teammate, shows=(LONG_EMAIL,)),
        Visit("billing-member", "/settings/billing/", member),
        Visit("payments-unavailable", "/settings/billing/", owner, then=_buy_without_payments),
        Visit("spending", "/settings/spending/", owner),
        Visit("api-keys", "/settings/api-keys/", owner, shows=(LONG_NAME, LONG_EMAIL)),
        Visit("byok", "/settings/byok/", owner),
        Visit("members", "/settings/members/", owner, shows=(LONG_EMAIL, INVITEE_EMAIL)),
        Visit("activity", "/settings/activity/", owner, shows=(LONG_NAME, LONG_EMAIL, INVITEE_EMAIL)),
        Visit("api-docs", "/api/v1/docs", owner, then=_swagger_drawn),
        Visit("pricing", "/", None),
        Visit("login", "/accounts/login/", None),
        Visit("signup", "/accounts/signup/", None),
        Visit("password-reset", "/accounts/password_reset/", None),
        Visit("password-reset-done", "/accounts/password_reset/done/", None),
        Visit("password-reset-confirm", reset_path, None),
        Visit("password-reset-complete", "/accounts/reset/done/", None),
        Visit("invitation", invitation_path, None, shows=(LONG_NAME, INVITEE_EMAIL)),
        Visit("invitation-other-account", invitation_path, teammate, shows=(LONG_EMAIL,)),
        Visit("not-found", "/settings/no-such-page/", owner),
        Visit("not-allowed", "/settings/byok/", member, then=_post_as_member),
        Visit("bad-request", too_many_fields, owner),
        Visit("server-error", "/settings/billing/", owner, then=_server_error),
        Visit("database-down", "/settings/billing/", owner, then=_database_down),
    ]
    return DemoSite(owner=owner, visits=visits)


def staff_admin_pages(workspace: Workspace) -> list[str]:
    """The staff admin's pages a test visits: Django's own and the project's, about ``workspace``."""
    entry = LedgerEntry.objects.filter(workspace=workspace).latest("id")
    return [
        reverse("admin:index"),
        reverse("admin:billing_workspace_changelist"),
        reverse("admin:billing_workspace_change", args=[workspace.pk]),
        reverse("admin:billing_workspace_adjust", args=[workspace.pk]),
        reverse("admin:billing_ledgerentry_changelist"),
        reverse("admin:billing_ledgerentry_change", args=[entry.pk]),
        reverse("admin:billing_plan_change", args=[Plan.objects.get(key="pro").pk]),
    ]
