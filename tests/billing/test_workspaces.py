from datetime import UTC, datetime

import pytest

from billing.errors import InvalidRequest
from billing.models import LedgerEntry, Membership, Wallet, Workspace
from billing.services import workspace_create

pytestmark = pytest.mark.django_db


def test_a_new_workspace_gets_its_owner_wallet_and_first_bucket(user):
    created = datetime(2027, 1, 31, 15, 0, tzinfo=UTC)
    ws = workspace_create(name="Acme", owner=user, time_zone="America/New_York", now=created)
    assert Membership.objects.get(workspace=ws).role == "owner"
    wallet = Wallet.objects.get(workspace=ws)
    assert (wallet.plan_balance, wallet.topup_balance, wallet.period_allowance) == (10_000_000, 0, 10_000_000)
    # The period runs on the workspace's clock: 10:00 in New York on the 31st, then the last day of February.
    assert wallet.period_start == created
    assert wallet.period_end == datetime(2027, 2, 28, 15, 0, tzinfo=UTC)
    (grant,) = LedgerEntry.objects.filter(workspace=ws)
    assert (grant.kind, grant.plan_delta, grant.plan_balance_after) == ("plan_grant", 10_000_000, 10_000_000)


def test_pro_grants_the_allowance_per_seat(user):
    ws = workspace_create(name="Team", owner=user, plan_key="pro", seats=3)
    assert Wallet.objects.get(workspace=ws).plan_balance == 3 * 80_000_000


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "  "}, "name"),
        ({"name": "x" * 121}, "name"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"plan_key": "platinum"}, "plan_key"),
        ({"seats": 0}, "seats"),
        ({"seats": "2"}, "seats"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(user, kwargs, field):
    with pytest.raises(InvalidRequest) as refusal:
        workspace_create(**{"name": "Acme", "owner": user, **kwargs})
    assert refusal.value.field == field
    assert refusal.value.as_dict()["code"] == "invalid_request"
    assert not Workspace.objects.exists()
    assert not LedgerEntry.objects.exists()
