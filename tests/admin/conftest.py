"""The people of the admin's permission matrix, and a workspace with some history to look at."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from billing.models import LedgerEntry, StripeEvent
from billing.services import charge, stripe_events
from billing.services.stripe_events import EventFailed, stripe_event_process, stripe_event_record
from tests.conftest import fund
from tests.factories import UserFactory, WorkspaceFactory

# What support staff get: to look at everything billing keeps, and nothing else.
VIEW_PERMISSIONS = [
    "billing.view_workspace",
    "billing.view_membership",
    "billing.view_wallet",
    "billing.view_ledgerentry",
    "billing.view_stripeevent",
    "billing.view_plan",
    "billing.view_topuppack",
    "billing.view_action",
    "billing.view_specialist",
    "billing.view_catalogchange",
    "billing.view_hold",
]
# What billing staff get on top: the dedicated permissions of the staff actions.
ACTION_PERMISSIONS = [
    "billing.adjust_credits",
    "billing.retry_stripeevent",
    "billing.change_plan",
    "billing.change_topuppack",
    "billing.change_action",
    "django_celery_beat.view_periodictask",
    "django_celery_beat.change_periodictask",
]

ROLES = ["anonymous", "member", "staff", "staff_with_permission", "superuser"]


def grant(user, *names: str):
    for name in names:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return type(user).objects.get(pk=user.pk)  # a fresh instance: permissions are cached per instance


def make_person(role: str, *, workspace=None):
    """A signed-in person of the given role (None for anonymous)."""
    if role == "anonymous":
        return None
    if role == "member":
        user = UserFactory(email="member@example.test")
        if workspace is not None:
            workspace.memberships.create(user=user, role="member")
        return user
    if role == "superuser":
        return UserFactory(email="root@example.test", is_staff=True, is_superuser=True)
    user = UserFactory(email=f"{role}@example.test", is_staff=True)
    if role == "staff":
        return grant(user, *VIEW_PERMISSIONS)
    return grant(user, *VIEW_PERMISSIONS, *ACTION_PERMISSIONS)


@pytest.fixture
def billing_staff(db):
    return make_person("staff_with_permission")


@pytest.fixture
def support_staff(db):
    return make_person("staff")


@pytest.fixture
def busy_workspace(db):
    """A workspace with a grant, a top-up adjustment and a few charges."""
    ws = WorkspaceFactory(name="Acme Growth")
    fund(ws, topup=500)
    for n in range(3):
        charge(workspace=ws, action="linkedin-dm", quantity=1, idempotency_key=f"dm-{n}")
    assert LedgerEntry.objects.filter(workspace=ws).count() == 5
    return ws


class FlakyHandler:
    """Fails until told to work; counts the runs that succeeded."""

    def __init__(self):
        self.broken = True
        self.succeeded = 0

    def __call__(self, obj, now):
        if self.broken:
            raise RuntimeError("Stripe could not be reached")
        self.succeeded += 1


@pytest.fixture
def failed_event(monkeypatch):
    handler = FlakyHandler()
    monkeypatch.setitem(stripe_events.HANDLERS, "invoice.paid", handler)
    ws = WorkspaceFactory(name="Flaky Co")
    event = {
        "id": "evt_flaky",
        "type": "invoice.paid",
        "created": 1_700_000_000,
        "data": {"object": {"id": "in_1", "metadata": {"workspace_id": str(ws.pk)}}},
    }
    stripe_event_record(event=event)
    with pytest.raises(EventFailed):
        stripe_event_process(event_id="evt_flaky")
    row = StripeEvent.objects.get(event_id="evt_flaky")
    assert row.status == "failed" and "Stripe could not be reached" in row.error
    return row, handler
