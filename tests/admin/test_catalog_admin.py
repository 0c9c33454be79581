"""The catalog in the admin: changes go through services, are recorded, and apply from then on."""

from __future__ import annotations

import pytest
from django.urls import reverse

from billing import catalog_cache
from billing.credits import format_credits
from billing.errors import InvalidRequest, NotPermitted
from billing.models import Action, CatalogChange, LedgerEntry, Plan, TopUpPack
from billing.services import action_update, charge, plan_update
from billing.services.catalog import EDITABLE
from tests.admin.conftest import make_person
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db


CREDIT_FIELDS = {"allowance", "amount", "unit_price"}  # typed in credits; the rows hold millicredits


def _form_data(row, subject: str, **changes) -> dict:
    data = {}
    for field in EDITABLE[subject]:
        value = changes.get(field, getattr(row, field))
        if isinstance(value, bool):
            if value:
                data[field] = "on"  # an unticked box is simply absent
        elif field in CREDIT_FIELDS:
            data[field] = format_credits(value)
        else:
            data[field] = str(value)
    return data


def _change_url(row) -> str:
    return reverse(f"admin:billing_{row._meta.model_name}_change", args=[row.pk])


def test_a_price_change_applies_from_then_on_history_untouched_and_is_recorded(client, billing_staff):
    ws = WorkspaceFactory()
    before = charge(workspace=ws, action="gmail-send", quantity=1, idempotency_key="before")
    action = Action.objects.get(key="gmail-send")
    old_price = action.unit_price
    assert before.unit_price == old_price

    client.force_login(billing_staff)
    response = client.post(_change_url(action), _form_data(action, "action", unit_price=old_price * 2))
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors

    action.refresh_from_db()
    assert action.unit_price == old_price * 2
    change = CatalogChange.objects.get()
    assert (change.subject, change.subject_id, change.subject_key) == ("action", action.pk, "gmail-send")
    assert (change.field, change.old_value, change.new_value) == ("unit_price", old_price, old_price * 2)
    assert change.changed_by == billing_staff and change.changed_at is not None
    # History keeps the price it was charged at; the next charge pays the new one.
    assert LedgerEntry.objects.get(pk=before.pk).unit_price == old_price
    after = charge(workspace=ws, action="gmail-send", quantity=1, idempotency_key="after")
    assert (after.unit_price, after.amount) == (old_price * 2, -old_price * 2)
    # The change shows on the action's page, and in the changes' own list.
    # In credits, as the form takes them: 200 credits a call, then 400.
    page = client.get(_change_url(action)).content.decode()
    assert "200 credits → 400 credits" in page and billing_staff.email in page
    assert 'name="unit_price" value="400"' in page and "Unit price (credits)" in page
    listed = client.get(reverse("admin:billing_catalogchange_changelist")).content.decode()
    assert "gmail-send" in listed and '<td class="field-field_name">unit price</td>' in listed
    assert "200 credits" in listed and "400 credits" in listed
    for raw in (old_price, old_price * 2):  # never the millicredits the rows hold
        assert str(raw) not in page and f"{raw:,}" not in page and str(raw) not in listed


def test_a_charge_pays_the_new_price_at_once_even_where_the_catalog_snapshot_is_stale(billing_staff):
    ws = WorkspaceFactory()
    charge(workspace=ws, action="gmail-send", quantity=1, idempotency_key="warm")  # this process's snapshot
    action = Action.objects.get(key="gmail-send")
    # As another process would: the row changes, this process's snapshot is not told.
    Action.objects.filter(pk=action.pk).update(unit_price=action.unit_price + 1)
    assert catalog_cache.catalog().actions["gmail-send"].unit_price == action.unit_price
    entry = charge(workspace=ws, action="gmail-send", quantity=1, idempotency_key="next")
    assert entry.unit_price == action.unit_price + 1


def test_another_processs_snapshot_picks_a_change_up_within_its_ttl(billing_staff, monkeypatch):
    snapshot = catalog_cache.catalog()
    action = Action.objects.get(key="gmail-send")
    Action.objects.filter(pk=action.pk).update(unit_price=777, max_quantity=3)  # not through this process
    assert catalog_cache.catalog().actions["gmail-send"].max_quantity == snapshot.actions["gmail-send"].max_quantity
    # Once the snapshot is older than TTL_SECONDS (here: any age), the next read reloads it: the change is
    # bounded in time.
    monkeypatch.setattr(catalog_cache, "TTL_SECONDS", 0.0)
    fresh = catalog_cache.catalog().actions["gmail-send"]
    assert (fresh.unit_price, fresh.max_quantity) == (777, 3)


def test_this_process_forgets_its_snapshot_once_the_change_commits(billing_staff, django_capture_on_commit_callbacks):
    catalog_cache.catalog()
    action = Action.objects.get(key="gmail-send")
    with django_capture_on_commit_callbacks(execute=True):
        action_update(action_id=action.pk, actor=billing_staff, changes={"is_active": False})
    assert "gmail-send" not in catalog_cache.catalog().actions


@pytest.mark.parametrize(
    ("row", "subject", "changes", "field"),
    [
        (lambda: Action.objects.get(key="gmail-send"), "action", {"unit_price": -1}, "unit_price"),
        (lambda: Action.objects.get(key="gmail-send"), "action", {"max_quantity": 0}, "max_quantity"),
        (lambda: Action.objects.get(key="gmail-send"), "action", {"label": " "}, "label"),
        (lambda: Plan.objects.get(key="free"), "plan", {"price_cents": 900}, "price_cents"),
        (lambda: Plan.objects.get(key="free"), "plan", {"is_active": False}, "is_active"),
        (lambda: Plan.objects.get(key="pro"), "plan", {"price_cents": 0}, "price_cents"),
        (lambda: Plan.objects.get(key="pro"), "plan", {"allowance": -5}, "allowance"),
        (lambda: TopUpPack.objects.get(key="100k"), "pack", {"amount": 0}, "amount"),
        (lambda: TopUpPack.objects.get(key="100k"), "pack", {"price_cents": 0}, "price_cents"),
    ],
)
def test_a_change_the_rules_forbid_is_shown_beside_its_field_and_writes_nothing(
    client, billing_staff, row, subject, changes, field
):
    row = row()
    before = {name: getattr(row, name) for name in EDITABLE[subject]}
    client.force_login(billing_staff)
    response = client.post(_change_url(row), _form_data(row, subject, **changes))
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    row.refresh_from_db()
    assert {name: getattr(row, name) for name in EDITABLE[subject]} == before
    assert not CatalogChange.objects.exists()


def test_the_services_refuse_what_the_form_would_and_unknown_fields(billing_staff):
    plan = Plan.objects.get(key="pro")
    with pytest.raises(InvalidRequest) as refused:
        plan_update(plan_id=plan.pk, actor=billing_staff, changes={"key": "gold"})
    assert refused.value.field == "key"
    with pytest.raises(InvalidRequest) as refused:
        plan_update(plan_id=plan.pk, actor=billing_staff, changes={"price_cents": "29"})
    assert refused.value.field == "price_cents"
    with pytest.raises(NotPermitted):
        plan_update(plan_id=plan.pk, actor=make_person("staff"), changes={"price_cents": 3_900})
    assert not CatalogChange.objects.exists()
    # No change, no record.
    plan_update(plan_id=plan.pk, actor=billing_staff, changes={"price_cents": plan.price_cents})
    assert not CatalogChange.objects.exists()


def test_several_fields_at_once_are_recorded_one_row_each(client, billing_staff):
    plan = Plan.objects.get(key="max")
    client.force_login(billing_staff)
    data = _form_data(plan, "plan", name="Max+", allowance=plan.allowance + 1_000)
    assert client.post(_change_url(plan), data).status_code == 302
    rows = {
        (c.field, c.old_value, c.new_value) for c in CatalogChange.objects.filter(subject="plan", subject_id=plan.pk)
    }
    assert rows == {("name", "Max", "Max+"), ("allowance", plan.allowance, plan.allowance + 1_000)}


@pytest.mark.parametrize("model", ["plan", "topuppack", "action", "catalogchange", "specialist"])
def test_catalog_rows_are_never_added_or_deleted_in_the_admin(client, model):
    client.force_login(make_person("superuser"))
    assert client.get(reverse(f"admin:billing_{model}_add")).status_code == 403
    row = {"plan": Plan, "topuppack": TopUpPack, "action": Action, "specialist": None, "catalogchange": None}[model]
    if row is not None:
        pk = row.objects.first().pk
        assert client.post(reverse(f"admin:billing_{model}_delete", args=[pk]), {"post": "yes"}).status_code == 403
        assert row.objects.filter(pk=pk).exists()


def test_the_record_of_changes_cannot_be_edited(client, billing_staff):
    action = Action.objects.get(key="gmail-send")
    action_update(action_id=action.pk, actor=billing_staff, changes={"label": "Email send"})
    change = CatalogChange.objects.get()
    client.force_login(make_person("superuser"))
    url = reverse("admin:billing_catalogchange_change", args=[change.pk])
    assert client.get(url).status_code == 200
    assert client.post(url, {"new_value": '"Free"'}).status_code == 403
    assert (
        client.post(reverse("admin:billing_catalogchange_delete", args=[change.pk]), {"post": "yes"}).status_code == 403
    )
    assert CatalogChange.objects.get().new_value == "Email send"
