"""No admin URL opens for a staff session that has not passed its second factor, and money never moves without one.

The URLs are read from the admin site itself (every registered ModelAdmin's, the site's own,
django-otp's device pages), so an admin page added later is covered without editing this file.
Django's plain test client: the password through the sign-in form, and no code.
"""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, reverse

from billing.admin.workspaces import new_adjustment_token
from billing.models import LedgerEntry, StripeEvent
from sigora.admin import SigoraAdminSite
from tests.billing.test_two_factor import PASSWORD, VERIFY, enrolled
from tests.conftest import second_factor_passed
from tests.factories import UserFactory, WorkspaceFactory


def admin_paths(object_id: int) -> list[str]:
    """A concrete path for every URL pattern of the admin site, each argument filled with ``object_id``."""
    found = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + route)
            elif isinstance(pattern, URLPattern):
                found.append(prefix + route)

    walk(admin.site.get_urls(), "")
    paths = []
    for route in found:
        if "(?P<" in route:  # the site's regular expressions: an app's index, and the catch-all
            route = "billing/" if "app_label" in route else "no-such-page/"
        paths.append("/admin/" + re.sub(r"<(?:\w+:)?\w+>", str(object_id), route))
    return sorted(set(paths))


def password_only(staff) -> Client:
    """A client signed in as ``staff`` with the password, and no code (made after any settings change)."""
    client = Client()
    assert client.post(reverse("login"), {"username": staff.username, "password": PASSWORD}).status_code == 302
    return client


@pytest.fixture
def staff(db):
    """A superuser with an authenticator app."""
    user = UserFactory(email="root@example.test", is_staff=True, is_superuser=True)
    enrolled(user)
    return user


@pytest.fixture
def without_second_factor_middleware(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != "billing.middleware.SecondFactorMiddleware"]


def test_every_admin_url_sends_an_unverified_staff_session_to_its_second_factor(staff):
    client = password_only(staff)
    ws = WorkspaceFactory(name="Acme")
    paths = admin_paths(ws.pk)
    # Every model's pages (changelist, add, change, delete, history), the adjust and re-run views,
    # django-otp's device pages, the site's index, app index, password change, logout and catch-all.
    assert len(paths) > 60
    assert f"/admin/billing/workspace/{ws.pk}/adjust/" in paths
    assert f"/admin/billing/stripeevent/{ws.pk}/retry/" in paths
    assert f"/admin/otp_totp/totpdevice/{ws.pk}/qrcode/" in paths
    opened = {}
    for path in paths:
        for method in (client.get, client.post):
            response = method(path)
            if not (response.status_code == 302 and response["Location"].startswith(VERIFY)):
                opened[f"{method.__name__} {path}"] = response.status_code
    assert opened == {}


def test_the_admin_site_itself_refuses_an_unverified_session(staff, without_second_factor_middleware):
    """Without the middleware that holds such a session at the code page, the admin site still lets it in nowhere."""
    client = password_only(staff)
    ws = WorkspaceFactory(name="Acme")
    opened = {}
    for path in admin_paths(ws.pk):
        response = client.get(path)
        # To the sign-in, or 403 (the adjust view's own check); the admin's sign-out goes back to its index.
        to = response["Location"] if response.status_code == 302 else ""
        if response.status_code != 403 and not to.startswith(("/admin/login/", "/accounts/login/")) and to != "/admin/":
            opened[path] = response.status_code
    assert opened == {}


@pytest.fixture
def admin_wide_open(staff, without_second_factor_middleware, monkeypatch):
    """An unverified staff session that some other path let into the admin: no middleware, Django's own check."""
    monkeypatch.setattr(SigoraAdminSite, "has_permission", admin.AdminSite.has_permission)
    client = password_only(staff)
    assert client.get(reverse("admin:index")).status_code == 200  # the admin is open to it
    return client, staff


def test_credit_adjustments_need_a_verified_session(admin_wide_open, busy_workspace):
    client, staff = admin_wide_open
    url = reverse("admin:billing_workspace_adjust", args=[busy_workspace.pk])
    form = {
        "token": new_adjustment_token(),
        "bucket": "top_up",
        "amount": "100",
        "description": "Goodwill",
        "internal_note": "ticket 1",
        "confirm": "1",
    }
    before = LedgerEntry.objects.filter(workspace=busy_workspace).count()
    assert client.get(url).status_code == 403
    assert client.post(url, form).status_code == 403
    assert LedgerEntry.objects.filter(workspace=busy_workspace).count() == before
    # The same session, once verified, may.
    second_factor_passed(client, staff)
    assert client.post(url, form).status_code == 302
    assert LedgerEntry.objects.filter(workspace=busy_workspace, kind="adjustment").count() == 2


def test_stripe_event_reruns_need_a_verified_session(admin_wide_open, failed_event):
    client, staff = admin_wide_open
    row, handler = failed_event
    handler.broken = False
    retry = reverse("admin:billing_stripeevent_retry", args=[row.pk])
    assert client.post(retry).status_code == 403
    listing = reverse("admin:billing_stripeevent_changelist")
    client.post(listing, {"action": "retry_failed", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.status == StripeEvent.Status.FAILED and handler.succeeded == 0
    second_factor_passed(client, staff)
    client.post(retry)
    row.refresh_from_db()
    assert row.status == StripeEvent.Status.PROCESSED and handler.succeeded == 1
