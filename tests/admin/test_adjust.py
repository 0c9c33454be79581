"""Adjust credits: the service and the admin's two-step form."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from billing.credits import credits
from billing.errors import IdempotencyConflict, InvalidRequest, NotPermitted
from billing.models import LedgerEntry, Wallet
from billing.selectors import ledger_audit
from billing.services import credits_adjust, credits_adjust_preview
from tests.admin.conftest import make_person
from tests.conftest import balances, fund
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db


def _audit_problems() -> list:
    return [problem for chunk in ledger_audit() for problem in chunk.problems]


def _adjust(ws, actor, **overrides):
    fields = {
        "bucket": "top_up",
        "amount": credits(250),
        "description": "Credit for the failed LinkedIn sends",
        "internal_note": "Refund for ticket #4411",
        "idempotency_key": "k1",
    }
    fields.update(overrides)
    return credits_adjust(workspace_id=ws.pk, actor=actor, **fields)


# --- The service ------------------------------------------------------------------------------


def test_an_adjustment_writes_exactly_one_entry_with_actor_description_and_note_and_the_ledger_stays_balanced(
    billing_staff, capsys
):
    ws = WorkspaceFactory()
    plan_before, topup_before = balances(ws)
    entries_before = LedgerEntry.objects.filter(workspace=ws).count()

    entry = _adjust(ws, billing_staff)

    assert LedgerEntry.objects.filter(workspace=ws).count() == entries_before + 1
    entry.refresh_from_db()
    assert (entry.kind, entry.actor_id) == ("adjustment", billing_staff.pk)
    # The customer's text is the entry's reason (what their pages read); staff's is the note.
    assert (entry.reason, entry.internal_note) == ("Credit for the failed LinkedIn sends", "Refund for ticket #4411")
    assert (entry.plan_delta, entry.topup_delta) == (0, credits(250))
    assert (entry.plan_balance_after, entry.topup_balance_after) == (plan_before, topup_before + credits(250))
    assert balances(ws) == (plan_before, topup_before + credits(250))
    assert _audit_problems() == []
    call_command("verify_ledger")
    assert "all balanced" in capsys.readouterr().out


def test_a_negative_adjustment_takes_from_the_chosen_bucket(billing_staff):
    ws = WorkspaceFactory()
    fund(ws, plan=100, topup=40)
    entry = _adjust(ws, billing_staff, bucket="plan", amount=credits("-99.5"))
    assert (entry.plan_delta, entry.topup_delta) == (credits("-99.5"), 0)
    assert balances(ws) == (credits("0.5"), credits(40))
    assert _audit_problems() == []


@pytest.mark.parametrize("bucket", ["plan", "top_up"])
def test_a_negative_adjustment_cannot_take_a_bucket_below_zero_and_writes_nothing(billing_staff, bucket):
    ws = WorkspaceFactory()
    fund(ws, plan=100, topup=40)
    held = 100 if bucket == "plan" else 40
    entries_before = LedgerEntry.objects.filter(workspace=ws).count()
    with pytest.raises(InvalidRequest) as refused:
        _adjust(ws, billing_staff, bucket=bucket, amount=-credits(held + 1))
    assert refused.value.field == "amount" and "below zero" in refused.value.message
    with pytest.raises(InvalidRequest):
        _adjust(ws, billing_staff, bucket=bucket, amount=-credits(held) - 1, idempotency_key="k2")
    assert LedgerEntry.objects.filter(workspace=ws).count() == entries_before
    assert balances(ws) == (credits(100), credits(40))
    # The whole bucket can go, to exactly zero.
    _adjust(ws, billing_staff, bucket=bucket, amount=-credits(held), idempotency_key="k3")
    assert balances(ws) == ((0, credits(40)) if bucket == "plan" else (credits(100), 0))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"description": "   "}, "description"),
        ({"description": ""}, "description"),
        ({"description": "x" * 1_001}, "description"),
        ({"description": "a\x00b"}, "description"),
        ({"internal_note": "   "}, "internal_note"),
        ({"internal_note": ""}, "internal_note"),
        ({"internal_note": "x" * 1_001}, "internal_note"),
        ({"internal_note": "a\x00b"}, "internal_note"),
        ({"amount": 0}, "amount"),
        ({"amount": credits(1_000_000_001)}, "amount"),
        ({"amount": True}, "amount"),
        ({"bucket": "wallet"}, "bucket"),
        ({"idempotency_key": ""}, "idempotency_key"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(billing_staff, overrides, field):
    ws = WorkspaceFactory()
    before = (balances(ws), LedgerEntry.objects.count())
    with pytest.raises(InvalidRequest) as refused:
        _adjust(ws, billing_staff, **overrides)
    assert refused.value.field == field
    assert (balances(ws), LedgerEntry.objects.count()) == before


@pytest.mark.parametrize("role", ["member", "staff", "superuser_inactive"])
def test_only_active_staff_with_the_permission_may_adjust(role):
    ws = WorkspaceFactory()
    if role == "superuser_inactive":
        actor = make_person("superuser")
        actor.is_active = False
        actor.save()
    else:
        actor = make_person(role)
    with pytest.raises(NotPermitted):
        _adjust(ws, actor)
    assert not LedgerEntry.objects.filter(workspace=ws, kind="adjustment").exists()


def test_the_same_key_adjusts_once_and_a_different_request_with_it_is_a_conflict(billing_staff):
    ws = WorkspaceFactory()
    first = _adjust(ws, billing_staff)
    again = _adjust(ws, billing_staff)
    assert again.pk == first.pk and again.replayed and not first.replayed
    # Only the same request replays: a retry that says something else to the customer, or
    # records another why, is a different adjustment, not this one again.
    for different in ({"amount": credits(999)}, {"description": "Another text"}, {"internal_note": "Ticket #1"}):
        with pytest.raises(IdempotencyConflict):
            _adjust(ws, billing_staff, **different)
    assert _adjust(ws, billing_staff, description="  Credit for the failed LinkedIn sends ").pk == first.pk
    assert LedgerEntry.objects.filter(workspace=ws, kind="adjustment").count() == 1


def test_the_preview_shows_before_and_after_and_writes_nothing(billing_staff):
    ws = WorkspaceFactory()
    fund(ws, plan=100, topup=40)
    count = LedgerEntry.objects.count()
    preview = credits_adjust_preview(
        workspace_id=ws.pk, bucket="plan", amount=credits(-30), description=" Correction ", internal_note=" dup #7 "
    )
    assert (preview.plan_before, preview.plan_after) == (credits(100), credits(70))
    assert (preview.topup_before, preview.topup_after) == (credits(40), credits(40))
    assert (preview.total_before, preview.total_after) == (credits(140), credits(110))
    assert (preview.description, preview.internal_note) == ("Correction", "dup #7")
    assert LedgerEntry.objects.count() == count
    with pytest.raises(InvalidRequest) as refused:
        credits_adjust_preview(
            workspace_id=ws.pk, bucket="top_up", amount=credits(-41), description="x", internal_note="y"
        )
    assert refused.value.field == "amount"
    with pytest.raises(InvalidRequest) as refused:
        credits_adjust_preview(
            workspace_id=ws.pk, bucket="top_up", amount=credits(1), description="x", internal_note=""
        )
    assert refused.value.field == "internal_note"


# --- The admin's form -------------------------------------------------------------------------


def _adjust_url(ws) -> str:
    return reverse("admin:billing_workspace_adjust", args=[ws.pk])


TEXTS = ("description", "internal-note")


def _token(response) -> str:
    return re.search(r'name="token" value="([0-9a-f]{32})"', response.content.decode()).group(1)


def test_the_form_then_the_confirmation_then_one_entry_and_a_double_submit_adjusts_once(client, billing_staff):
    ws = WorkspaceFactory(name="Acme Growth")
    fund(ws, plan=100, topup=40)
    client.force_login(billing_staff)

    form = client.get(_adjust_url(ws))
    assert form.status_code == 200
    token = _token(form)
    asked = form.content.decode()
    assert "Description (the customer sees this)" in asked and "Internal note (staff only)" in asked
    assert "Shown word for word in the customer&#x27;s transactions and CSV" in asked
    data = {
        "amount": "-12.5",
        "bucket": "top_up",
        "description": "Correction of a duplicate top-up",
        "internal_note": "Duplicate charge, ticket #77",
        "token": token,
    }

    confirm = client.post(_adjust_url(ws), data)
    page = confirm.content.decode()
    assert confirm.status_code == 200 and "Confirm the adjustment" in page
    # Before and after, as the confirmation shows them.
    assert re.search(r"Top-up credits</td><td>40</td><td>27.5</td>", page)
    assert re.search(r"Plan bucket</td><td>100</td><td>100</td>", page)
    assert re.search(r"Total</td><td>140</td><td>127.5</td>", page)
    assert f'value="{token}"' in page
    # Both texts, each under what it is for.
    shown = {name: re.search(rf'data-testid="adjust-{name}">(.*?)</p>', page).group(1) for name in TEXTS}
    assert shown == {"description": "Correction of a duplicate top-up", "internal-note": "Duplicate charge, ticket #77"}
    assert "The customer reads" in page and "Internal note, staff only" in page
    assert balances(ws) == (credits(100), credits(40)), "the review step writes nothing"

    done = client.post(_adjust_url(ws), {**data, "confirm": "1"})
    assert done.status_code == 302 and done["Location"] == reverse("admin:billing_workspace_change", args=[ws.pk])
    again = client.post(_adjust_url(ws), {**data, "confirm": "1"}, follow=True)
    assert "already made" in again.content.decode()

    entries = LedgerEntry.objects.filter(workspace=ws, kind="adjustment", actor=billing_staff)
    assert [(e.topup_delta, e.reason, e.internal_note) for e in entries] == [
        (credits("-12.5"), "Correction of a duplicate top-up", "Duplicate charge, ticket #77")
    ]
    history = client.get(reverse("admin:billing_workspace_history", args=[ws.pk])).content.decode()
    assert f"Adjusted credits: ledger entry #{entries[0].pk}." in history
    assert balances(ws) == (credits(100), credits("27.5"))
    assert _audit_problems() == []


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"amount": "-41"}, "amount", "below zero"),
        ({"amount": "abc"}, "amount", "Enter a number of credits"),
        ({"amount": "0.0001"}, "amount", "three decimals at most"),
        ({"amount": "1,0"}, "amount", "groups of three digits"),
        ({"amount": "１２"}, "amount", "digits 0 to 9"),
        ({"amount": "1e9"}, "amount", "Enter a number of credits"),
        ({"amount": "1000000000.001"}, "amount", "from -1,000,000,000 to 1,000,000,000 credits"),
        ({"amount": "-1000000000.001"}, "amount", "from -1,000,000,000 to 1,000,000,000 credits"),
        ({"amount": "9" * 10_000}, "amount", "from -1,000,000,000 to 1,000,000,000 credits"),
        ({"amount": "0"}, "amount", "must not be zero"),
        ({"description": ""}, "description", "This field is required"),
        ({"description": "   "}, "description", "This field is required"),
        ({"description": "x" * 1_001}, "description", "at most 1000 characters"),
        ({"internal_note": ""}, "internal_note", "This field is required"),
        ({"internal_note": "   "}, "internal_note", "This field is required"),
        ({"internal_note": "x" * 1_001}, "internal_note", "at most 1000 characters"),
        ({"bucket": "both"}, "bucket", "Select a valid choice"),
    ],
)
def test_bad_input_on_the_form_is_shown_beside_its_field_and_nothing_is_written(
    client, billing_staff, data, field, message
):
    ws = WorkspaceFactory()
    fund(ws, plan=100, topup=40)
    client.force_login(billing_staff)
    count = LedgerEntry.objects.count()
    token = _token(client.get(_adjust_url(ws)))
    post = {"amount": "5", "bucket": "top_up", "description": "Credit", "internal_note": "why", "token": token, **data}
    for step in ({}, {"confirm": "1"}):  # the review and a forged confirmation alike
        response = client.post(_adjust_url(ws), {**post, **step})
        assert response.status_code == 200
        assert field in response.context["form"].errors
        assert message in " ".join(response.context["form"].errors[field])
    assert LedgerEntry.objects.count() == count and balances(ws) == (credits(100), credits(40))


def test_the_workspace_page_offers_the_form_only_to_those_allowed(client, billing_staff, support_staff):
    ws = WorkspaceFactory()
    page = reverse("admin:billing_workspace_change", args=[ws.pk])
    client.force_login(billing_staff)
    assert _adjust_url(ws) in client.get(page).content.decode()
    client.force_login(support_staff)
    response = client.get(page)
    assert response.status_code == 200 and _adjust_url(ws) not in response.content.decode()
    assert client.get(_adjust_url(ws)).status_code == 403


def test_the_entry_names_the_staff_user_in_the_admins_ledger(client, billing_staff):
    ws = WorkspaceFactory()
    entry = _adjust(ws, billing_staff)
    client.force_login(billing_staff)
    page = client.get(reverse("admin:billing_ledgerentry_change", args=[entry.pk])).content.decode()
    assert "Credit for the failed LinkedIn sends" in page and "Refund for ticket #4411" in page
    assert billing_staff.email in page
    assert Wallet.objects.get(workspace=ws).revision >= 2


def test_an_unknown_workspace_is_not_found(client, billing_staff):
    client.force_login(billing_staff)
    assert client.get(reverse("admin:billing_workspace_adjust", args=["999999"])).status_code == 404
    assert client.get(reverse("admin:billing_workspace_adjust", args=["abc"])).status_code == 404
