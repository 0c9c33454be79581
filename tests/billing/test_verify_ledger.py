from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from billing.models import LedgerEntry, Wallet
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db


def verify(*args):
    """Run verify_ledger; return (passed, stdout, stderr)."""
    out, err = StringIO(), StringIO()
    try:
        call_command("verify_ledger", *args, stdout=out, stderr=err)
    except CommandError as failure:
        return False, out.getvalue() + str(failure), err.getvalue()
    return True, out.getvalue(), err.getvalue()


def test_a_clean_database_passes():
    WorkspaceFactory.create_batch(3)
    passed, report, _ = verify()
    assert passed
    assert "3 workspaces, 3 ledger entries checked: all balanced" in report


def test_a_tampered_wallet_is_caught_and_named():
    good, bad = WorkspaceFactory.create_batch(2)
    Wallet.objects.filter(workspace=bad).update(plan_balance=11_000_000)
    passed, report, _ = verify()
    assert not passed
    assert f"workspace {bad.pk} ({bad.name}): plan bucket is 11000000 mc but its entries add up to 10000000" in report
    assert f"workspace {good.pk} " not in report
    assert "1 workspace(s) FAILED" in report


def test_an_entry_that_breaks_the_running_balance_is_caught():
    ws = WorkspaceFactory()
    # Balances after that do not follow from the previous entry, as if an entry went missing.
    entry = LedgerEntry.objects.create(
        workspace=ws,
        kind="adjustment",
        plan_delta=0,
        topup_delta=5_000,
        plan_balance_after=10_000_000,
        topup_balance_after=9_000,
        idempotency_key="broken",
        reason="test",
        created_at=timezone.now(),
    )
    Wallet.objects.filter(workspace=ws).update(topup_balance=5_000)
    passed, report, _ = verify()
    assert not passed
    assert f"running balance breaks at entry #{entry.pk}" in report
    assert "entries add up" not in report  # the sums agree; only the chain shows the damage


def test_a_workspace_without_a_wallet_is_caught():
    ws = WorkspaceFactory()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM billing_wallet WHERE workspace_id = %s", [ws.pk])
    passed, report, _ = verify()
    assert not passed
    assert "has no wallet" in report


def test_progress_is_reported_in_chunks():
    WorkspaceFactory.create_batch(5)
    passed, _, progress = verify("--chunk-size", "2")
    assert passed
    assert "checked 5 / 5 workspaces" in progress


def test_one_workspace_can_be_checked_alone():
    good, bad = WorkspaceFactory.create_batch(2)
    Wallet.objects.filter(workspace=bad).update(topup_balance=1)
    assert verify("--workspace", str(good.pk))[0]
    assert not verify("--workspace", str(bad.pk))[0]
