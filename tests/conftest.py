import re

import pytest
from django.core.cache import cache
from django.db import connections, transaction
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

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


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache: the password-reset throttle counts there (billing/throttles.py)."""
    cache.clear()


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


# A test that reads from the ``replica`` alias (the test database itself, on a second connection:
# sigora/settings/test.py) needs committed rows, so a transaction=True test.
REPLICA_TEST = pytest.mark.django_db(transaction=True, serialized_rollback=True, databases=["default", "replica"])


@pytest.fixture
def with_replica(settings):
    """Reads that may lag go to the replica alias, as with DATABASE_REPLICA_URL set."""
    settings.REPLICA_DATABASE = "replica"


@pytest.fixture
def lagging_replica(with_replica):
    """A replica that has not caught up: its connection holds a REPEATABLE READ snapshot taken now,
    so nothing committed after this shows on it, as on a standby behind the primary."""
    with transaction.atomic(using="replica"), connections["replica"].cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute(f"SELECT count(*) FROM {Wallet._meta.db_table}")  # the snapshot is taken here
        yield


def second_factor_passed(client, user):
    """Mark ``client``'s session as verified by ``user``'s authenticator app (made if need be), as a right code does."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Test app", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


class VerifiedClient(Client):
    """Django's test client, whose ``force_login`` also passes a staff user's second factor.

    Most tests of the admin are about what staff may do once signed in; the second factor itself
    (enrolment, codes, every admin URL refused without it) is tested with Django's plain client
    in tests/billing/test_two_factor.py and tests/admin/test_two_factor_admin.py.
    """

    def force_login(self, user, backend=None):
        super().force_login(user, backend)
        if user.is_staff:
            second_factor_passed(self, user)


@pytest.fixture
def client():
    return VerifiedClient()


@pytest.fixture
def admin_client(db, admin_user):
    client = VerifiedClient()
    client.force_login(admin_user)
    return client


def page_without_csrf_token(response) -> str:
    """The page's text with its CSRF token (a fresh mask of the secret on every render) blanked out."""
    return re.sub(r"\b[A-Za-z0-9]{64}\b", "<csrf-token>", response.content.decode())
