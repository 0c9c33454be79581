from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum

from billing.models import Action, DailyUsage, LedgerEntry, RefusalTally, Specialist, SpecialistCap, Wallet, Workspace

pytestmark = pytest.mark.django_db


def seed():
    out = StringIO()
    call_command("seed_demo", "--force", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_seed_demo_builds_a_live_month_and_is_idempotent():
    first = seed()
    assert "demo@sigora.test / sigora-demo" in first
    workspace = Workspace.objects.get(name="Acme Growth")
    entries = LedgerEntry.objects.filter(workspace=workspace)
    count = entries.count()
    assert count > 500
    usage = entries.filter(kind="usage")
    assert set(usage.values_list("action__key", flat=True)) == set(Action.objects.values_list("key", flat=True))
    assert set(usage.values_list("specialist", flat=True)) == set(Specialist.objects.values_list("key", flat=True))
    assert entries.filter(kind="top_up").count() == 1
    assert workspace.plan.key == "max"
    days = {entry.created_at.date() for entry in usage}
    assert len(days) >= 20
    # Written through the engine: its usage counters agree with the ledger, day by day.
    counters = DailyUsage.objects.filter(workspace=workspace)
    assert counters.aggregate(total=Sum("credits"))["total"] == -sum(e.amount for e in usage)
    assert counters.aggregate(total=Sum("events"))["total"] == usage.count()
    assert RefusalTally.objects.filter(workspace=workspace, code="sequence_paused").exists()
    assert SpecialistCap.objects.filter(workspace=workspace).count() == 2

    second = seed()
    assert "already seeded" in second
    assert Workspace.objects.filter(name="Acme Growth").count() == 1
    assert LedgerEntry.objects.count() == count

    verified = StringIO()
    call_command("verify_ledger", stdout=verified, stderr=StringIO())
    assert "all balanced" in verified.getvalue()
    wallet = Wallet.objects.get(workspace=workspace)
    assert wallet.total == sum(e.amount for e in entries)


def test_seed_demo_refuses_without_debug():
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo", stdout=StringIO(), stderr=StringIO())
    assert not Workspace.objects.exists()
