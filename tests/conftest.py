import pytest

from billing.catalog_cache import catalog_invalidate
from billing.credits import credits
from billing.models import LedgerEntry, Wallet
from tests.factories import UserFactory, WorkspaceFactory


@pytest.fixture(autouse=True)
def fresh_catalog():
    """Each test sees the catalog as its own database holds it."""
    catalog_invalidate()
    yield
    catalog_invalidate()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def workspace(db):
    return WorkspaceFactory()


def fund(workspace, *, plan=None, topup=None):
    """Set a workspace's balances through a ledger entry, as an adjustment would."""
    from django.db import transaction
    from django.utils import timezone

    from billing.services import entry_post, wallet_lock

    with transaction.atomic():
        wallet = wallet_lock(workspace_id=workspace.pk)
        entry_post(
            wallet,
            kind=LedgerEntry.Kind.ADJUSTMENT,
            plan_delta=(wallet.plan_balance if plan is None else credits(plan)) - wallet.plan_balance,
            topup_delta=(wallet.topup_balance if topup is None else credits(topup)) - wallet.topup_balance,
            idempotency_key=f"fund:{LedgerEntry.objects.filter(workspace=workspace).count()}",
            reason="test funding",
            now=timezone.now(),
        )
    return Wallet.objects.get(workspace=workspace)


def balances(workspace):
    wallet = Wallet.objects.get(workspace=workspace)
    return wallet.plan_balance, wallet.topup_balance
