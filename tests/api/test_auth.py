"""Who may call: service tokens, workspace API keys, and everyone else (401 that says nothing)."""

import hashlib
from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from api.credentials import api_key_create, api_key_revoke, service_token_create, service_token_revoke
from api.models import ApiKey, ByokKeyRead, ServiceToken
from billing.models import Activity, LedgerEntry
from billing.services import byok_set
from tests.api.conftest import Api
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db

BYOK_KEY = "sk-ant-api03-" + "k" * 40
UNAUTHENTICATED = {
    "code": "unauthenticated",
    "message": "Missing or invalid credentials: send Authorization: Bearer <token> with a live token.",
}


def test_credentials_are_stored_as_a_prefix_and_a_sha256_only(workspace, staff):
    token, secret = service_token_create(name="gateway", created_by=staff)
    key, key_secret = api_key_create(workspace=workspace, name="scripts", actor=None)
    assert secret.startswith("sgs_") and key_secret.startswith("sgk_")
    assert len(secret) == len(key_secret) == 47
    for credential, plain in ((token, secret), (key, key_secret)):
        stored = type(credential).objects.get(pk=credential.pk)
        assert stored.prefix == plain[:12]
        assert stored.secret_hash == hashlib.sha256(plain.encode()).hexdigest()
        assert plain not in str(type(credential).objects.filter(pk=credential.pk).values().get())


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer sgk_not-a-real-token",
        "Bearer sgk_" + "A" * 43,  # well-formed, unknown
        "Bearer sgx_" + "A" * 43,  # unknown kind
        "Bearer sgk_" + "\x00" * 43,  # characters no token has (and the database could not look up)
    ],
)
def test_a_missing_or_wrong_credential_is_401_with_one_message(client, workspace, authorization):
    headers = {"Sigora-Workspace": str(workspace.pk)}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = client.get("/api/v1/balance", headers=headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_right_prefix_with_a_wrong_secret_is_401(client, api_key):
    forged = api_key[:12] + ("A" if api_key[12] != "A" else "B") + api_key[13:]
    response = Api(client, forged).get("balance")
    assert (response.status_code, response.json()) == (401, UNAUTHENTICATED)


def test_401_reads_the_same_whether_or_not_the_named_workspace_exists(client, workspace):
    bad = "sgs_" + "x" * 43
    existing = Api(client, bad, workspace.pk).get("balance")
    missing = Api(client, bad, workspace.pk + 10_000).get("balance")
    assert existing.status_code == missing.status_code == 401
    assert existing.content == missing.content


def test_a_revoked_api_key_stops_at_once(client, workspace):
    key, secret = api_key_create(workspace=workspace, name="scripts", actor=None)
    api = Api(client, secret)
    assert api.post("charges", {"action": "gmail-send", "idempotency_key": "a"}).status_code == 201
    api_key_revoke(api_key=key, actor=None)
    response = api.post("charges", {"action": "gmail-send", "idempotency_key": "b"})
    assert (response.status_code, response.json()) == (401, UNAUTHENTICATED)
    assert not LedgerEntry.objects.filter(idempotency_key="b").exists()


def test_a_revoked_service_token_stops_at_once(client, workspace, staff):
    token, secret = service_token_create(name="gateway", created_by=staff)
    api = Api(client, secret, workspace.pk)
    assert api.get("balance").status_code == 200
    service_token_revoke(token=token, actor=staff)
    assert api.get("balance").status_code == 401


def test_a_service_token_acts_on_any_workspace_it_names(client, service_token):
    one, two = WorkspaceFactory(), WorkspaceFactory()
    for ws in (one, two):
        response = Api(client, service_token, ws.pk).post("charges", {"action": "gmail-send", "idempotency_key": "k"})
        assert response.status_code == 201
        assert LedgerEntry.objects.filter(workspace=ws, idempotency_key="k").exists()


def test_a_service_token_must_name_a_workspace_that_exists(client, service_token, workspace):
    unnamed = Api(client, service_token).get("balance")
    assert (unnamed.status_code, unnamed.json()["field"]) == (422, "Sigora-Workspace")
    malformed = Api(client, service_token).get("balance", headers={"Sigora-Workspace": "abc"})
    assert (malformed.status_code, malformed.json()["field"]) == (422, "Sigora-Workspace")
    missing = Api(client, service_token, workspace.pk + 10_000).get("balance")
    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found", "message": "No such workspace for this credential."}
    huge = Api(client, service_token, 10**19).get("balance")  # past bigint: not an id at all
    assert (huge.status_code, huge.json()["field"]) == (422, "Sigora-Workspace")


def test_an_api_key_cannot_touch_another_workspace_and_cannot_tell_if_it_exists(client, api_key, workspace):
    other = WorkspaceFactory()
    api = Api(client, api_key)
    assert Api(client, api_key, workspace.pk).get("balance").status_code == 200  # naming its own is fine
    to_other = Api(client, api_key, other.pk).post("charges", {"action": "gmail-send", "idempotency_key": "x"})
    to_nowhere = Api(client, api_key, other.pk + 10_000).post(
        "charges", {"action": "gmail-send", "idempotency_key": "x"}
    )
    assert to_other.status_code == to_nowhere.status_code == 404
    assert to_other.content == to_nowhere.content
    assert not LedgerEntry.objects.filter(idempotency_key="x").exists()
    assert api.get("balance").json()["workspace"] == workspace.pk


def test_last_used_is_written_at_most_once_a_minute(client, api_key, workspace, credential_clock):
    api = Api(client, api_key)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        api.get("balance")
        first = ApiKey.objects.get(workspace=workspace).last_used_at
        assert first == start
    credential_clock[0] += 30  # past the second a process keeps a verified key
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        api.get("balance")
        assert ApiKey.objects.get(workspace=workspace).last_used_at == first
    credential_clock[0] += 31
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        api.get("balance")
        assert ApiKey.objects.get(workspace=workspace).last_used_at == start + timedelta(seconds=61)


def test_the_byok_key_is_read_only_by_service_tokens_and_every_read_is_logged(
    client, service_token, api_key, workspace
):
    byok_set(workspace=workspace, api_key=BYOK_KEY)
    refused = Api(client, api_key).get("byok-key")
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert not ByokKeyRead.objects.exists()
    response = Api(client, service_token, workspace.pk).get("byok-key")
    assert response.status_code == 200
    assert response.json() == {"byok": True, "api_key": BYOK_KEY}
    assert response["Cache-Control"] == "no-store"
    read = ByokKeyRead.objects.get()
    assert (read.workspace_id, read.service_token.prefix, read.key_hint) == (
        workspace.pk,
        service_token[:12],
        workspace.byok_key_hint,
    )


def test_a_workspace_without_a_byok_key_reads_null_and_the_read_is_still_logged(client, service_token, workspace):
    response = Api(client, service_token, workspace.pk).get("byok-key")
    assert response.json() == {"byok": False, "api_key": None}
    assert ByokKeyRead.objects.filter(workspace=workspace, key_hint="").count() == 1


def test_creating_and_revoking_a_key_is_in_the_workspaces_activity(workspace):
    key, _ = api_key_create(workspace=workspace, name="Zapier", actor=None)
    api_key_revoke(api_key=key, actor=None)
    api_key_revoke(api_key=key, actor=None)  # twice: one record
    verbs = list(Activity.objects.filter(workspace=workspace).order_by("id").values_list("verb", "detail"))
    assert verbs[-2:] == [
        ("api_key_created", f"Zapier ({key.prefix}…)"),
        ("api_key_revoked", f"Zapier ({key.prefix}…)"),
    ]
    last = Activity.objects.filter(workspace=workspace).order_by("id").last()
    assert last.get_verb_display() == "revoked an API key"  # what Settings → Activity says


def test_the_database_refuses_a_credential_of_the_wrong_kind(workspace):
    with pytest.raises(IntegrityError), transaction.atomic():
        ServiceToken.objects.create(name="x", prefix="sgk_12345678", secret_hash="0" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.create(workspace=workspace, name="x", prefix="sgs_12345678", secret_hash="0" * 64)
