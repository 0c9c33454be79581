"""Migrations that change rows: run them forward and back against entries written the old way."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import F
from django.urls import reverse

from billing.credits import credits
from billing.models import LedgerEntry
from billing.services import credits_adjust
from tests.factories import UserFactory, WorkspaceFactory

# Migrating moves the schema, so the test cannot run inside the usual rolled-back transaction.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

BEFORE_SPLIT = ("billing", "0017_activity_api_key_verbs")
OLD_REASON = "Refund for ticket #4411: billed twice, customer furious"
DEFAULT_DESCRIPTION = "Credit adjustment by Sigora support"


def _migrate(*targets: tuple[str, str]):
    """Move the database to ``targets``; the models of that state."""
    executor = MigrationExecutor(connection)
    executor.migrate(list(targets))
    return executor.loader.project_state(list(targets)).apps


def _latest() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def _write_the_old_way(apps, *, workspace_id: int, kind: str, amount: int, key: str, **fields) -> int:
    """An entry and its wallet change as the code before the split wrote them (one reason)."""
    wallet_model = apps.get_model("billing", "Wallet")
    entry_model = apps.get_model("billing", "LedgerEntry")
    with transaction.atomic():
        wallet = wallet_model.objects.select_for_update().get(workspace_id=workspace_id)
        entry = entry_model.objects.create(
            workspace_id=workspace_id,
            kind=kind,
            plan_delta=0,
            topup_delta=amount,
            plan_balance_after=wallet.plan_balance,
            topup_balance_after=wallet.topup_balance + amount,
            idempotency_key=key,
            created_at=datetime(2026, 11, 20, 9, tzinfo=UTC),
            **fields,
        )
        wallet_model.objects.filter(pk=wallet.pk).update(topup_balance=F("topup_balance") + amount)
    return entry.pk


def _trigger_enabled() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'billing_ledger_append_only'")
        return cursor.fetchone() == ("O",)


def test_the_split_moves_old_adjustment_reasons_to_the_internal_note_and_back(client, capsys):
    owner, staff = UserFactory(), UserFactory(is_staff=True, is_superuser=True)
    ws = WorkspaceFactory(owner=owner)
    try:
        old = _migrate(BEFORE_SPLIT)
        assert "internal_note" not in {f.name for f in old.get_model("billing", "LedgerEntry")._meta.fields}
        adjustment = _write_the_old_way(
            old, workspace_id=ws.pk, kind="adjustment", amount=credits(25), key="adjustment:old", actor_id=staff.pk,
            reason=OLD_REASON,
        )  # fmt: skip
        top_up = _write_the_old_way(
            old, workspace_id=ws.pk, kind="top_up", amount=credits(100), key="purchase:cs_1", reason="Top-up pack: 100K"
        )
        before = {e.pk: e for e in LedgerEntry.objects.filter(workspace=ws).defer("internal_note")}

        # Forward to the latest, through the split: the pages below read today's models, which later
        # migrations extend (the card on file of 0019), so the schema must be theirs.
        _latest()

        entries = {e.pk: e for e in LedgerEntry.objects.filter(workspace=ws)}
        moved = entries[adjustment]
        assert (moved.reason, moved.internal_note) == (DEFAULT_DESCRIPTION, OLD_REASON)
        # Every other kind keeps its text, and no entry's amounts or balances moved.
        assert (entries[top_up].reason, entries[top_up].internal_note) == ("Top-up pack: 100K", "")
        grant = next(e for e in entries.values() if e.kind == "plan_grant")
        assert (grant.reason, grant.internal_note) == (before[grant.pk].reason, "")
        money = ("plan_delta", "topup_delta", "plan_balance_after", "topup_balance_after", "created_at", "actor_id")
        assert [[getattr(e, f) for f in money] for e in entries.values()] == [
            [getattr(before[pk], f) for f in money] for pk in entries
        ]
        call_command("verify_ledger")
        assert "all balanced" in capsys.readouterr().out
        # The trigger is back: the ledger is append-only again.
        assert _trigger_enabled()
        with pytest.raises(IntegrityError), transaction.atomic():
            LedgerEntry.objects.filter(pk=adjustment).update(reason="rewritten")
        # The customer now reads the default description, and never the old reason.
        client.force_login(owner)
        exported = b"".join(client.get(reverse("billing:transactions_csv")).streaming_content).decode()
        page = client.get(reverse("billing:transactions"), HTTP_HX_REQUEST="true").content.decode()
        reasons = {row["ID"]: row["Description"] for row in csv.DictReader(io.StringIO(exported))}
        assert reasons[str(adjustment)] == DEFAULT_DESCRIPTION and DEFAULT_DESCRIPTION in page
        assert "furious" not in exported and "furious" not in page

        # One made after the split, then back: a moved entry gets its reason again; a newer one
        # keeps the description (its note, staff's, must not become the customer's text).
        newer = credits_adjust(
            workspace_id=ws.pk,
            bucket="top_up",
            amount=credits(1),
            description="Goodwill credit",
            internal_note="asked nicely",
            actor=staff,
            idempotency_key="new",
        ).pk
        back = _migrate(BEFORE_SPLIT)
        reverted = dict(back.get_model("billing", "LedgerEntry").objects.values_list("pk", "reason"))
        assert (reverted[adjustment], reverted[newer], reverted[top_up]) == (
            OLD_REASON,
            "Goodwill credit",
            "Top-up pack: 100K",
        )
        assert _trigger_enabled()
    finally:
        _latest()


def test_backup_codes_stored_readable_before_0021_are_digested_and_still_sign_in():
    from django_otp.plugins.otp_static.models import StaticToken

    from billing.services import two_factor_check
    from billing.services.two_factor import backup_code_stored

    old = _migrate(("billing", "0020_email_verification"), ("otp_static", "0003_add_timestamps"))
    user = UserFactory(email="staff@example.test", is_staff=True)
    device = old.get_model("otp_static", "StaticDevice").objects.create(user_id=user.pk, name="Backup codes")
    codes = ["abcdefghijklmnop", "qrstuvwxyz234567"]  # as issue 18 stored them: readable
    old_token = old.get_model("otp_static", "StaticToken")
    old_token.objects.bulk_create(old_token(device_id=device.pk, token=code) for code in codes)

    _latest()

    assert set(StaticToken.objects.filter(device_id=device.pk).values_list("token", flat=True)) == {
        backup_code_stored(code) for code in codes
    }
    assert two_factor_check(user=user, code=codes[0]).pk == device.pk  # the code its owner kept still works
    assert list(StaticToken.objects.filter(device_id=device.pk).values_list("token", flat=True)) == [
        backup_code_stored(codes[1])
    ]
