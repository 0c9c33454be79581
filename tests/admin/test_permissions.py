"""Who may do what in the admin: every page and every action, for each kind of person.

- anonymous and members (signed in, not staff): the admin's login page, except the adjustment
  form, which answers a signed-in person without the permission 403;
- staff without the dedicated permissions ("support"): every billing page read-only, no action;
- staff with them: the actions too; the superuser: everything, but never a ledger edit.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from billing.credits import credits, format_credits
from billing.models import Action, CatalogChange, LedgerEntry, Plan, Specialist, StripeEvent, TopUpPack, Wallet
from billing.services import action_update
from tests.admin.conftest import ROLES, make_person
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db

LOGIN = "login"  # a redirect to the admin's login page


@pytest.fixture
def world(failed_event):
    """One of everything the admin shows, and the person of each role."""
    ws = WorkspaceFactory(name="Acme Growth")
    event, handler = failed_event
    handler.broken = False  # a re-run would now succeed
    people = {role: make_person(role, workspace=ws) for role in ROLES}
    action_update(
        action_id=Action.objects.get(key="gmail-send").pk, actor=people["superuser"], changes={"label": "Gmail"}
    )
    task = PeriodicTask.objects.create(
        name="reset-periods",
        task="billing.reset_periods",
        interval=IntervalSchedule.objects.create(every=5, period="minutes"),
    )
    return {
        "ws": ws,
        "entry": LedgerEntry.objects.filter(workspace=ws).first(),
        "event": event,
        "task": task,
        "people": people,
    }


def _pages(world) -> dict[str, tuple[str, str]]:
    """name → (url, who may see it beyond the superuser: "staff" = support staff too)."""
    pk = {
        "workspace": world["ws"].pk,
        "wallet": Wallet.objects.get(workspace=world["ws"]).pk,
        "ledgerentry": world["entry"].pk,
        "stripeevent": world["event"].pk,
        "plan": Plan.objects.get(key="pro").pk,
        "topuppack": TopUpPack.objects.first().pk,
        "action": Action.objects.get(key="gmail-send").pk,
        "specialist": Specialist.objects.first().pk,
        "catalogchange": CatalogChange.objects.get().pk,
    }
    pages = {
        "index": (reverse("admin:index"), "staff"),
        "billing": (reverse("admin:app_list", args=["billing"]), "staff"),
    }
    for model, key in pk.items():
        pages[f"{model} list"] = (reverse(f"admin:billing_{model}_changelist"), "staff")
        pages[f"{model} page"] = (reverse(f"admin:billing_{model}_change", args=[key]), "staff")
    pages["ledger csv"] = (reverse("admin:billing_ledgerentry_export"), "staff")
    pages["adjust form"] = (reverse("admin:billing_workspace_adjust", args=[world["ws"].pk]), "permission")
    pages["periodic tasks"] = (reverse("admin:django_celery_beat_periodictask_changelist"), "permission")
    pages["periodic task"] = (
        reverse("admin:django_celery_beat_periodictask_change", args=[world["task"].pk]),
        "permission",
    )
    return pages


def _expected_page(role: str, page: str, audience: str):
    if role == "anonymous" or (role == "member" and page != "adjust form"):
        return LOGIN
    if role == "member":
        return 403
    if role == "staff" and audience == "permission":
        return 403
    return 200


def _outcome(response):
    if response.status_code == 302 and response["Location"].startswith(reverse("admin:login")):
        return LOGIN
    return response.status_code


@pytest.mark.parametrize("role", ROLES)
def test_every_page_for_every_role(client, world, role):
    person = world["people"][role]
    if person is not None:
        client.force_login(person)
    seen = {}
    expected = {}
    for page, (url, audience) in _pages(world).items():
        seen[page] = _outcome(client.get(url))
        expected[page] = _expected_page(role, page, audience)
    assert seen == expected


def test_every_admin_page_shows_the_sites_favicon(client, world):
    from django.templatetags.static import static

    favicon = f'<link rel="icon" href="{static("favicon.svg")}" type="image/svg+xml">'
    assert favicon in client.get(reverse("admin:login"), follow=True).content.decode()  # the site's sign-in
    client.force_login(world["people"]["superuser"])
    pages = {page: client.get(url) for page, (url, _) in _pages(world).items()}
    html = {page: r.content.decode() for page, r in pages.items() if r["Content-Type"].startswith("text/html")}
    assert len(html) == len(pages) - 1  # all but the ledger's CSV
    assert [page for page, text in html.items() if favicon not in text] == []


# --- Actions: each says whether it happened ---------------------------------------------------


def _adjust(client, world):
    url = reverse("admin:billing_workspace_adjust", args=[world["ws"].pk])
    data = {
        "amount": "5",
        "bucket": "top_up",
        "description": "Goodwill credit",
        "internal_note": "goodwill",
        "token": "a" * 32,
        "confirm": "1",
    }
    response = client.post(url, data)
    return response, LedgerEntry.objects.filter(workspace=world["ws"], kind="adjustment").exists()


def _retry_button(client, world):
    response = client.post(reverse("admin:billing_stripeevent_retry", args=[world["event"].pk]))
    return response, StripeEvent.objects.get(pk=world["event"].pk).status == "processed"


def _retry_action(client, world):
    response = client.post(
        reverse("admin:billing_stripeevent_changelist"),
        {"action": "retry_failed", "_selected_action": [world["event"].pk]},
    )
    return response, StripeEvent.objects.get(pk=world["event"].pk).status == "processed"


def _price_change(client, world):
    action = Action.objects.get(key="gmail-send")
    data = {
        "label": action.label,
        "description": action.description,
        "unit_price": format_credits(action.unit_price + 1),  # typed in credits: one millicredit more
        "max_quantity": str(action.max_quantity),
        "sort_order": str(action.sort_order),
        "is_active": "on",
    }
    response = client.post(reverse("admin:billing_action_change", args=[action.pk]), data)
    return response, Action.objects.get(pk=action.pk).unit_price == action.unit_price + 1


def _pause_job(client, world):
    response = client.post(
        reverse("admin:django_celery_beat_periodictask_changelist"),
        {"action": "disable_tasks", "_selected_action": [world["task"].pk]},
    )
    return response, not PeriodicTask.objects.get(pk=world["task"].pk).enabled


def _ledger_edit(client, world):
    entry = world["entry"]
    change = client.post(
        reverse("admin:billing_ledgerentry_change", args=[entry.pk]), {"reason": "x", "plan_delta": credits(1)}
    )
    delete = client.post(reverse("admin:billing_ledgerentry_delete", args=[entry.pk]), {"post": "yes"})
    bulk = client.post(
        reverse("admin:billing_ledgerentry_changelist"),
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )
    fresh = LedgerEntry.objects.filter(pk=entry.pk).first()
    happened = fresh is None or fresh.reason != entry.reason or fresh.plan_delta != entry.plan_delta
    assert _outcome(bulk) in (LOGIN, 403, 200, 302)
    assert _outcome(change) == _outcome(delete)
    return change, happened


ACTIONS = {
    "adjust credits": (_adjust, {"staff_with_permission", "superuser"}, {"member": 403, "staff": 403}),
    "re-run an event (button)": (_retry_button, {"staff_with_permission", "superuser"}, {"staff": 403}),
    "re-run an event (action)": (_retry_action, {"staff_with_permission", "superuser"}, {}),
    "change a price": (_price_change, {"staff_with_permission", "superuser"}, {"staff": 403}),
    "pause a job": (_pause_job, {"staff_with_permission", "superuser"}, {"staff": 403}),
    "edit or delete a ledger entry": (
        _ledger_edit,
        set(),
        {"staff": 403, "staff_with_permission": 403, "superuser": 403},
    ),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_for_every_role(client, world, role, action):
    do, allowed, refusals = ACTIONS[action]
    person = world["people"][role]
    if person is not None:
        client.force_login(person)
    response, happened = do(client, world)
    assert happened == (role in allowed)
    if role in ("anonymous", "member") and role not in refusals:
        assert _outcome(response) == LOGIN
    elif role in refusals:
        assert _outcome(response) == refusals[role]
    else:
        assert _outcome(response) in (200, 302) and _outcome(response) != LOGIN
