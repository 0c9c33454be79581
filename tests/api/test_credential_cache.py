"""A process keeps a credential it verified for a second; a revocation still stops it at once.

Revoking in this process drops what it keeps; revoking in another reaches this one through the
rate limit's Redis at its next request; without that Redis, a second is the bound. A service
token is kept once for every workspace it names: the workspaces a process has seen exist are
kept apart from it.
"""

import pytest
from django.test import override_settings
from django.utils import timezone

from api import credentials
from api.credentials import api_key_create, api_key_revoke, revocation_announce
from api.models import ApiKey, ServiceToken
from billing.models import LedgerEntry
from tests.api.conftest import Api
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def lookups(monkeypatch):
    """How many times the credential was read from the database (the real lookup, counted)."""
    calls = []
    real = credentials.credential_authenticate

    def counted(*args, **kwargs):
        calls.append(kwargs.get("workspace_id"))
        return real(*args, **kwargs)

    monkeypatch.setattr(credentials, "credential_authenticate", counted)
    return calls


def revoked_elsewhere(key: ApiKey) -> None:
    """What this process sees of a revocation made by another: the row changed, nothing dropped here."""
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())


def test_a_verified_key_is_read_once_a_second_not_on_every_call(client, workspace, credential_clock, lookups):
    _, secret = api_key_create(workspace=workspace, name="scripts", actor=None)
    api = Api(client, secret)
    assert [api.get("balance").status_code for _ in range(5)] == [200] * 5
    assert len(lookups) == 1
    credential_clock[0] += 1.0
    assert api.get("balance").status_code == 200
    assert len(lookups) == 2


def test_without_redis_a_key_revoked_elsewhere_stops_within_the_second(client, workspace, credential_clock):
    key, secret = api_key_create(workspace=workspace, name="scripts", actor=None)
    api = Api(client, secret)
    assert api.post("charges", {"action": "gmail-send", "idempotency_key": "a"}).status_code == 201
    revoked_elsewhere(key)
    credential_clock[0] += 0.9
    assert api.post("charges", {"action": "gmail-send", "idempotency_key": "b"}).status_code == 201  # the bound
    credential_clock[0] += 0.1
    assert api.post("charges", {"action": "gmail-send", "idempotency_key": "c"}).status_code == 401
    assert not LedgerEntry.objects.filter(idempotency_key="c").exists()


def test_with_redis_a_key_revoked_in_another_process_stops_at_the_next_request(
    client, workspace, credential_clock, redis_db13
):
    key, secret = api_key_create(workspace=workspace, name="scripts", actor=None)
    api = Api(client, secret)
    assert api.post("charges", {"action": "gmail-send", "idempotency_key": "a"}).status_code == 201
    assert api.post("charges", {"action": "gmail-send", "idempotency_key": "b"}).status_code == 201  # kept
    revoked_elsewhere(key)
    revocation_announce()  # what the other process does once its revocation commits
    assert redis_db13.get("sigora:api:credential-revocations") == b"1"
    response = api.post("charges", {"action": "gmail-send", "idempotency_key": "c"})
    assert response.status_code == 401  # the clock has not moved: the counter did it
    assert not LedgerEntry.objects.filter(idempotency_key="c").exists()


def test_with_redis_other_keys_are_read_again_after_a_revocation_and_keep_working(
    client, workspace, credential_clock, lookups, redis_db13
):
    _, secret = api_key_create(workspace=workspace, name="scripts", actor=None)
    other, _ = api_key_create(workspace=workspace, name="zapier", actor=None)
    api = Api(client, secret)
    assert [api.get("balance").status_code for _ in range(3)] == [200] * 3
    reads = len(lookups)
    api_key_revoke(api_key=other, actor=None)
    revocation_announce()  # the test's transaction never commits: announce as the commit would
    assert [api.get("balance").status_code for _ in range(4)] == [200] * 4
    # Read again, and again once the moved counter dropped that read too (it may have come before
    # the revocation's commit), then kept.
    assert len(lookups) == reads + 2


def test_revoking_in_this_process_drops_what_it_keeps_at_once(client, workspace, credential_clock):
    key, secret = api_key_create(workspace=workspace, name="scripts", actor=None)
    api = Api(client, secret)
    assert api.get("balance").status_code == 200
    api_key_revoke(api_key=key, actor=None)
    assert api.get("balance").status_code == 401


@override_settings(API_CREDENTIAL_CACHE_SECONDS=0)
def test_a_cache_of_zero_seconds_reads_every_call(client, workspace, credential_clock, lookups):
    key, secret = api_key_create(workspace=workspace, name="scripts", actor=None)
    api = Api(client, secret)
    assert [api.get("balance").status_code for _ in range(3)] == [200] * 3
    assert len(lookups) == 3
    revoked_elsewhere(key)
    assert api.get("balance").status_code == 401


def test_a_service_token_is_kept_per_workspace_it_names(client, service_token, workspace, credential_clock, lookups):
    assert Api(client, service_token, workspace.pk).get("balance").status_code == 200
    missing = Api(client, service_token, workspace.pk + 10_000).get("balance")
    assert missing.status_code == 404  # not answered from the other workspace's check
    assert Api(client, service_token, workspace.pk).get("balance").status_code == 200
    assert lookups == [workspace.pk, workspace.pk + 10_000]


def test_a_service_token_is_read_once_a_second_however_many_workspaces_it_names(
    client, service_token, credential_clock, lookups
):
    workspaces = [WorkspaceFactory().pk for _ in range(3)]
    # Each workspace is read once, the first time it is named (with the token, in one round trip) ...
    assert [Api(client, service_token, pk).get("balance").status_code for pk in workspaces] == [200] * 3
    assert lookups == workspaces
    # ... and then the token is kept for all of them.
    assert [Api(client, service_token, pk).get("balance").status_code for pk in workspaces * 3] == [200] * 9
    assert len(lookups) == 3
    # A second on, the token is read again once, for whichever workspace comes first.
    credential_clock[0] += 1.0
    assert [Api(client, service_token, pk).get("balance").status_code for pk in workspaces[::-1]] == [200] * 3
    assert lookups == [*workspaces, workspaces[-1]]


def test_a_kept_service_token_still_answers_for_the_workspace_each_call_names(client, service_token, credential_clock):
    first, second = WorkspaceFactory(), WorkspaceFactory()
    for n, workspace in enumerate((first, second, first, second)):
        response = Api(client, service_token, workspace.pk).post(
            "charges", {"action": "gmail-send", "idempotency_key": f"k{n}"}
        )
        assert response.status_code == 201
    charged = LedgerEntry.objects.filter(kind="usage").values_list("idempotency_key", "workspace_id")
    assert sorted(charged) == [("k0", first.pk), ("k1", second.pk), ("k2", first.pk), ("k3", second.pk)]
    assert Api(client, service_token, first.pk).get("balance").json()["workspace"] == first.pk
    assert Api(client, service_token, second.pk).get("balance").json()["workspace"] == second.pk


def test_a_workspace_that_does_not_exist_is_looked_up_every_time(
    client, service_token, workspace, credential_clock, lookups
):
    assert Api(client, service_token, workspace.pk).get("balance").status_code == 200
    missing = workspace.pk + 10_000
    assert [Api(client, service_token, missing).get("balance").status_code for _ in range(3)] == [404] * 3
    assert lookups == [workspace.pk, missing, missing, missing]


def test_a_service_token_revoked_elsewhere_stops_for_every_workspace_it_was_kept_for(
    client, service_token, credential_clock, redis_db13
):
    workspaces = [WorkspaceFactory().pk for _ in range(2)]
    assert [Api(client, service_token, pk).get("balance").status_code for pk in workspaces] == [200, 200]
    ServiceToken.objects.update(revoked_at=timezone.now())
    revocation_announce()
    assert [Api(client, service_token, pk).get("balance").status_code for pk in workspaces] == [401, 401]
