"""POST /api/v1/holds, …/settle and …/release: every status and code a caller can meet."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from api.credentials import api_key_create
from billing.credits import credits
from billing.models import Hold, LedgerEntry, Wallet
from billing.services import charge, hold_place
from tests.api.conftest import Api
from tests.conftest import balances, fund
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def funded(workspace):
    fund(workspace, plan=6_000, topup=4_000)
    return workspace


def place(api, amount="3000", key="run-1", **extra):
    return api.post("holds", {"amount": amount, "idempotency_key": key, **extra})


def test_a_hold_answers_201_reserves_at_once_and_moves_no_credits(as_service, funded):
    response = place(as_service, "9000", specialist="sourcing", expires_in=3600, metadata={"run": "opus-7"})
    assert response.status_code == 201, response.content
    body = response.json()
    hold = Hold.objects.get(workspace=funded)
    assert body["id"] == hold.pk
    assert (body["status"], body["expired"], body["replayed"]) == ("active", False, False)
    assert body["amount"] == {"credits": "9000", "millicredits": 9_000_000}
    assert (body["specialist"], body["metadata"], body["settled_entry"]) == ("sourcing", {"run": "opus-7"}, None)
    assert hold.expires_at - hold.created_at == timedelta(hours=1)
    assert balances(funded) == (credits(6_000), credits(4_000))
    balance = as_service.get("balance").json()
    assert balance["reserved"] == {"credits": "9000", "millicredits": 9_000_000}
    assert balance["available"] == {"credits": "1000", "millicredits": 1_000_000}
    refused = as_service.post("charges", {"action": "linkedin-dm", "idempotency_key": "dm"})
    assert refused.status_code == 402
    assert refused.json()["available"] == {"credits": "1000", "millicredits": 1_000_000}
    assert refused.json()["reserved"] == {"credits": "9000", "millicredits": 9_000_000}


def test_a_replayed_hold_answers_200_and_another_amount_under_its_key_409(as_service, funded):
    first = place(as_service, "2500.5")
    again = place(as_service, "2500.5")
    assert (first.status_code, again.status_code) == (201, 200)
    assert (again.json()["id"], again.json()["replayed"]) == (first.json()["id"], True)
    conflict = place(as_service, "2500.6")
    assert (conflict.status_code, conflict.json()["code"]) == (409, "idempotency_conflict")
    assert Hold.objects.filter(workspace=funded).count() == 1


def test_a_hold_beyond_the_available_balance_is_402_and_writes_nothing(as_key, funded):
    place(as_key, "7000", key="a")
    refused = place(as_key, "3000.001", key="b")
    assert refused.status_code == 402
    body = refused.json()
    assert body["code"] == "insufficient_credits"
    assert body["required"] == {"credits": "3000.001", "millicredits": 3_000_001}
    assert body["available"] == {"credits": "3000", "millicredits": 3_000_000}
    assert body["reserved"] == {"credits": "7000", "millicredits": 7_000_000}
    assert not Hold.objects.filter(idempotency_key="b").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "0", "idempotency_key": "k"}, "amount"),
        ({"amount": 100, "idempotency_key": "k"}, "amount"),  # amounts are decimal strings, never numbers
        ({"amount": "1.0001", "idempotency_key": "k"}, "amount"),
        ({"amount": "10", "idempotency_key": "k", "expires_in": 86_401}, "expires_in"),
        ({"amount": "10", "idempotency_key": "k", "expires_in": True}, "expires_in"),
        ({"amount": "10"}, "idempotency_key"),
        ({"amount": "10", "idempotency_key": "k", "colour": "red"}, "colour"),
    ],
)
def test_bad_hold_requests_are_422_naming_the_field(as_service, funded, body, field):
    response = as_service.post("holds", body)
    assert response.status_code == 422, response.content
    assert (response.json()["code"], response.json()["field"]) == ("invalid_request", field)
    assert not Hold.objects.exists()


def test_settling_answers_201_with_the_entry_the_hold_and_the_balance(as_service, funded):
    hold_id = place(as_service, "9000", specialist="sourcing").json()["id"]
    response = as_service.post(f"holds/{hold_id}/settle", {"action": "claude-opus", "quantity": 2_000})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["replayed"] is False
    assert (body["hold"]["status"], body["hold"]["settled_entry"]) == ("settled", body["entry"]["id"])
    assert body["entry"]["amount"] == {"credits": "-3000", "millicredits": -3_000_000}
    assert (body["entry"]["specialist"], body["entry"]["idempotency_key"]) == ("sourcing", f"hold:{hold_id}")
    assert body["balance"]["total"] == {"credits": "7000", "millicredits": 7_000_000}
    assert Wallet.objects.get(workspace=funded).holds == {}
    # The 6,000 not used are free again.
    assert as_service.get("balance").json()["available"]["credits"] == "7000"

    replay = as_service.post(f"holds/{hold_id}/settle", {"action": "claude-opus", "quantity": 2_000})
    assert (replay.status_code, replay.json()["replayed"], replay.json()["entry"]["id"]) == (
        200,
        True,
        body["entry"]["id"],
    )
    other = as_service.post(f"holds/{hold_id}/settle", {"action": "claude-opus", "quantity": 2_001})
    assert (other.status_code, other.json()["code"]) == (409, "hold_settled")
    released = as_service.post(f"holds/{hold_id}/release")
    assert (released.status_code, released.json()["code"]) == (409, "hold_settled")
    assert LedgerEntry.objects.filter(workspace=funded, kind="usage").count() == 1


def test_settling_beyond_the_hold_and_the_free_balance_is_402_and_the_hold_stays(as_service, funded):
    hold_id = place(as_service, "3000").json()["id"]
    charge(workspace=funded, action="crustdata-enrich", idempotency_key="enrich")  # 5,000: 2,000 free
    refused = as_service.post(f"holds/{hold_id}/settle", {"action": "claude-haiku", "quantity": 50_010})  # 5,001
    assert (refused.status_code, refused.json()["code"]) == (402, "insufficient_credits")
    assert Hold.objects.get(pk=hold_id).status == "active"
    fits = as_service.post(f"holds/{hold_id}/settle", {"action": "claude-haiku", "quantity": 50_000})
    assert fits.status_code == 201
    assert balances(funded) == (0, 0)


def test_settle_refusals_of_the_usage_itself(as_service, funded):
    hold_id = place(as_service, "3000").json()["id"]
    unknown = as_service.post(f"holds/{hold_id}/settle", {"action": "nope", "quantity": 1})
    assert (unknown.status_code, unknown.json()["code"], unknown.json()["field"]) == (422, "unknown_action", "action")
    missing = as_service.post(f"holds/{hold_id}/settle", {"quantity": 1})
    assert (missing.status_code, missing.json()["field"]) == (422, "action")
    malformed = as_service.post("holds/abc/settle", {"action": "claude-opus"})
    assert (malformed.status_code, malformed.json()["field"]) == (422, "hold_id")
    absent = as_service.post(f"holds/{hold_id + 1000}/settle", {"action": "claude-opus"})
    assert (absent.status_code, absent.json()["code"]) == (404, "hold_not_found")
    assert Hold.objects.get(pk=hold_id).status == "active"


def test_an_api_key_cannot_reach_another_workspaces_hold(client, funded):
    other = WorkspaceFactory()
    stranger = hold_place(workspace=other, amount=credits(10), idempotency_key="theirs")
    _, secret = api_key_create(workspace=funded, name="ours", actor=None)
    ours = Api(client, secret)
    for path in (f"holds/{stranger.pk}/settle", f"holds/{stranger.pk}/release"):
        response = ours.post(path, {"action": "claude-opus"} if path.endswith("settle") else None)
        assert (response.status_code, response.json()["code"]) == (404, "hold_not_found"), path
    assert Hold.objects.get(pk=stranger.pk).status == "active"


def test_releasing_answers_200_frees_at_once_and_again_is_the_same(as_service, funded):
    hold_id = place(as_service, "9000").json()["id"]
    released = as_service.post(f"holds/{hold_id}/release")
    assert released.status_code == 200
    assert (released.json()["status"], released.json()["replayed"]) == ("released", False)
    assert as_service.get("balance").json()["reserved"]["millicredits"] == 0
    again = as_service.post(f"holds/{hold_id}/release")
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    settle = as_service.post(f"holds/{hold_id}/settle", {"action": "claude-opus"})
    assert (settle.status_code, settle.json()["code"]) == (409, "hold_released")


def test_an_expired_hold_says_so_reserves_nothing_and_settles_as_a_plain_charge(as_service, funded):
    body = place(as_service, "9000", expires_in=60).json()
    with time_machine.travel(timezone.now() + timedelta(seconds=60), tick=False):
        assert as_service.get("balance").json()["available"]["credits"] == "10000"
        settled = as_service.post(f"holds/{body['id']}/settle", {"action": "claude-opus", "quantity": 1_000})
    assert settled.status_code == 201
    assert settled.json()["hold"]["status"] == "settled"
    assert balances(funded) == (credits(4_500), credits(4_000))


def test_too_many_holds_is_409(as_service, funded):
    for n in range(100):
        hold_place(workspace=funded, amount=1, idempotency_key=f"h{n}")
    refused = place(as_service, "1", key="one-more")
    assert (refused.status_code, refused.json()["code"], refused.json()["max_active_holds"]) == (
        409,
        "too_many_holds",
        100,
    )


def test_the_holds_operations_are_in_the_schema(client):
    document = client.get("/api/v1/openapi.json").json()
    paths = document["paths"]
    assert {"/holds", "/holds/{hold_id}/settle", "/holds/{hold_id}/release"} <= set(paths)
    place_codes = paths["/holds"]["post"]["responses"]
    assert {"201", "200", "402", "409", "422"} <= set(place_codes)
    settle = paths["/holds/{hold_id}/settle"]["post"]["responses"]
    conflicts = settle["409"]["content"]["application/json"]["schema"]["allOf"][1]["properties"]["code"]["enum"]
    assert {"hold_settled", "hold_released", "idempotency_conflict"} <= set(conflicts)
    assert settle["404"]["content"]["application/json"]["schema"]["allOf"][1]["properties"]["code"]["enum"] == [
        "hold_not_found",
        "not_found",
    ]
