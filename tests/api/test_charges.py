"""POST /api/v1/charges and /charges/batch: every status and code a caller can meet."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from billing.credits import credits
from billing.models import LedgerEntry, RefusalTally
from billing.services import budget_set, cap_set, charge, record_reply
from tests.conftest import balances, fund

pytestmark = pytest.mark.django_db


def test_a_charge_answers_201_with_the_entry_and_exact_balances(as_service, workspace):
    response = as_service.post(
        "charges",
        {"action": "claude-haiku", "quantity": 7, "idempotency_key": "run-1/step-1", "specialist": "outreach"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    entry = LedgerEntry.objects.get(workspace=workspace, idempotency_key="run-1/step-1")
    assert body["entry"]["id"] == entry.pk
    assert body["entry"]["amount"] == {"credits": "-0.7", "millicredits": -700}
    assert body["entry"]["unit_price"] == {"credits": "0.1", "millicredits": 100}
    assert body["entry"]["action"] == "claude-haiku"
    assert body["entry"]["specialist"] == "outreach"
    assert body["replayed"] is False
    assert body["balance"] == {
        "plan": {"credits": "9999.3", "millicredits": 9_999_300},
        "topup": {"credits": "0", "millicredits": 0},
        "total": {"credits": "9999.3", "millicredits": 9_999_300},
    }
    assert balances(workspace) == (9_999_300, 0)
    assert response["Content-Type"] == "application/json"


def test_an_api_key_charges_its_own_workspace_without_naming_it(as_key, workspace):
    response = as_key.post("charges", {"action": "gmail-send", "idempotency_key": "mail-1"})
    assert response.status_code == 201
    assert LedgerEntry.objects.filter(workspace=workspace, idempotency_key="mail-1").exists()


def test_a_replay_answers_200_with_the_first_result_and_charges_once(as_service, workspace):
    request = {"action": "gmail-send", "idempotency_key": "send-42", "metadata": {"to": "x"}}
    first = as_service.post("charges", request)
    as_service.post("charges", {"action": "gmail-send", "idempotency_key": "other"})  # the balance moves on
    replay = as_service.post("charges", request)
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json()["replayed"] is True
    assert replay.json()["entry"]["id"] == first.json()["entry"]["id"]
    assert replay.json()["balance"] == first.json()["balance"]  # the first result, not today's balance
    assert LedgerEntry.objects.filter(workspace=workspace, idempotency_key="send-42").count() == 1


def test_the_same_key_with_a_different_body_is_409_idempotency_conflict(as_service, workspace):
    as_service.post("charges", {"action": "gmail-send", "idempotency_key": "k"})
    before = balances(workspace)
    response = as_service.post("charges", {"action": "linkedin-dm", "idempotency_key": "k"})
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert response.json()["idempotency_key"] == "k"
    assert balances(workspace) == before


def test_not_enough_credits_is_402_with_the_amounts(as_service, workspace):
    fund(workspace, plan="1000", topup="0.5")
    response = as_service.post("charges", {"action": "linkedin-dm", "idempotency_key": "dm"})
    assert response.status_code == 402
    body = response.json()
    assert body["code"] == "insufficient_credits"
    assert body["required"] == {"credits": "1500", "millicredits": 1_500_000}
    assert body["available"] == {"credits": "1000.5", "millicredits": 1_000_500}
    assert balances(workspace) == (credits(1000), credits("0.5"))


def test_a_daily_cap_is_429_with_retry_after_at_the_end_of_the_workspaces_day(as_service, workspace):
    paris = ZoneInfo("Europe/Paris")
    workspace.time_zone = "Europe/Paris"
    workspace.save()
    cap_set(workspace=workspace, specialist="outreach", daily_cap=credits(200))
    with time_machine.travel(datetime(2027, 3, 10, 22, 30, tzinfo=paris), tick=False):
        assert as_service.post("charges", {"action": "gmail-send", "idempotency_key": "m1"}).status_code == 201
        response = as_service.post("charges", {"action": "gmail-send", "idempotency_key": "m2"})
    assert response.status_code == 429
    assert response["Retry-After"] == str(90 * 60)  # 22:30 → midnight in Paris
    body = response.json()
    assert body["code"] == "daily_cap_reached"
    assert body["specialist"] == "outreach"
    assert body["resets_at"] == "2027-03-11T00:00:00+01:00"
    assert body["daily_cap"] == {"credits": "200", "millicredits": 200_000}


def test_the_monthly_budget_is_429_daily_cap_reached_until_the_period_renews(as_service, workspace):
    budget_set(workspace=workspace, monthly_budget=credits(100))
    response = as_service.post("charges", {"action": "gmail-send", "idempotency_key": "m1"})
    assert response.status_code == 429
    assert response.json()["code"] == "daily_cap_reached"
    assert response.json()["limit"] == "monthly_budget"
    period_end = workspace.wallet.period_end
    assert datetime.fromisoformat(response.json()["resets_at"]) == period_end
    assert 0 < int(response["Retry-After"]) <= 31 * 86_400


def test_a_paused_lead_is_409_sequence_paused_and_counted_not_charged(as_service, workspace):
    record_reply(workspace, "lead-7")
    before = balances(workspace)
    response = as_service.post("charges", {"action": "gmail-send", "idempotency_key": "step-2", "lead": "lead-7"})
    assert response.status_code == 409
    assert response.json()["code"] == "sequence_paused"
    assert response.json()["leads"] == ["lead-7"]
    assert balances(workspace) == before
    assert RefusalTally.objects.get(workspace=workspace, code="sequence_paused").refusals == 1


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"idempotency_key": "k"}, "invalid_request", "action"),
        ({"action": "gmail-send"}, "invalid_request", "idempotency_key"),
        ({"action": "no-such-tool", "idempotency_key": "k"}, "unknown_action", "action"),
        ({"action": "claude-haiku", "idempotency_key": "k", "quantity": 0}, "invalid_request", "quantity"),
        ({"action": "claude-haiku", "idempotency_key": "k", "quantity": 7.0}, "invalid_request", "quantity"),
        ({"action": "claude-haiku", "idempotency_key": "k", "quantity": "7"}, "invalid_request", "quantity"),
        ({"action": "claude-haiku", "idempotency_key": "has space"}, "invalid_request", "idempotency_key"),
        ({"action": "claude-haiku", "idempotency_key": "k", "specialist": "nobody"}, "invalid_request", "specialist"),
        ({"action": "gmail-send", "idempotency_key": "k", "colour": "red"}, "invalid_request", "colour"),
        ({"action": "gmail-send", "idempotency_key": "k", "metadata": []}, "invalid_request", "metadata"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_writes_nothing(as_service, workspace, body, code, field):
    response = as_service.post("charges", body)
    assert response.status_code == 422, response.content
    assert response.json()["code"] == code
    assert response.json()["field"] == field
    assert not LedgerEntry.objects.filter(workspace=workspace, kind="usage").exists()


def test_a_body_that_is_not_json_is_400_and_not_an_object_422(as_service):
    assert as_service.post("charges", raw=b"{nope").json()["code"] == "invalid_json"
    assert as_service.post("charges", raw=b"{nope").status_code == 400
    assert as_service.post("charges", raw=b'{"quantity": NaN}').status_code == 400
    not_object = as_service.post("charges", raw=b"[1, 2]")
    assert (not_object.status_code, not_object.json()["field"]) == (422, "body")


def test_another_method_is_405_in_json(as_service):
    response = as_service.get("charges")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["code"] == "method_not_allowed"


# --- Batch ---------------------------------------------------------------------------------------


def test_a_batch_charges_every_event_in_order_and_a_replay_charges_nothing(as_service, workspace):
    events = [{"action": "gmail-send", "idempotency_key": f"mail-{n}", "lead": f"lead-{n}"} for n in range(3)]
    events.append({"action": "claude-haiku", "quantity": 7, "idempotency_key": "ai-1", "specialist": "sourcing"})
    response = as_service.post("charges/batch", {"events": events})
    assert response.status_code == 201, response.content
    body = response.json()
    assert [e["idempotency_key"] for e in body["entries"]] == ["mail-0", "mail-1", "mail-2", "ai-1"]
    assert (body["charged"], body["replayed"]) == (4, 0)
    spent = 3 * 200_000 + 700
    assert body["balance"]["total"] == {"credits": "9399.3", "millicredits": 10_000_000 - spent}
    again = as_service.post("charges/batch", {"events": events})
    assert again.status_code == 200
    assert (again.json()["charged"], again.json()["replayed"]) == (0, 4)
    assert again.json()["entries"] == [{**e, "replayed": True} for e in body["entries"]]
    assert balances(workspace) == (10_000_000 - spent, 0)


def test_a_batch_is_all_or_nothing_and_names_the_bad_event(as_service, workspace):
    events = [
        {"action": "gmail-send", "idempotency_key": "a"},
        {"action": "gmail-send", "idempotency_key": "b", "x": 1},
    ]
    response = as_service.post("charges/batch", {"events": events})
    assert response.status_code == 422
    assert response.json()["field"] == "events[1].x"
    fund(workspace, plan="300")
    response = as_service.post(
        "charges/batch", {"events": [{"action": "gmail-send", "idempotency_key": k} for k in ("a", "b")]}
    )
    assert response.status_code == 402
    assert not LedgerEntry.objects.filter(workspace=workspace, kind="usage").exists()


def test_a_batch_of_1000_events_fits_and_1001_is_refused(as_service, workspace):
    fund(workspace, topup="1000000")
    events = [{"action": "claude-haiku", "quantity": 10, "idempotency_key": f"ai-{n:04d}"} for n in range(1000)]
    response = as_service.post("charges/batch", {"events": events})
    assert response.status_code == 201
    assert response.json()["charged"] == 1000
    too_many = [*events, {"action": "claude-haiku", "quantity": 10, "idempotency_key": "ai-x"}]
    response = as_service.post("charges/batch", {"events": too_many})
    assert (response.status_code, response.json()["field"]) == (422, "events")


def test_charges_match_what_the_service_writes(as_service, workspace):
    """The endpoint is the service: the same key charged in-process replays over HTTP."""
    entry = charge(workspace=workspace, action="gmail-send", idempotency_key="from-python")
    response = as_service.post("charges", {"action": "gmail-send", "idempotency_key": "from-python"})
    assert response.status_code == 200
    assert response.json()["entry"]["id"] == entry.pk


def _nested_batch(depth: int, key: str) -> bytes:
    metadata = '{"x": ' + "[" * depth + "]" * depth + "}"
    event = '{"action": "gmail-send", "idempotency_key": "' + key + '", "metadata": ' + metadata + "}"
    return ('{"events": [' + event + "]}").encode()


def test_deeply_nested_json_is_400_not_a_server_error(as_service):
    response = as_service.post("charges/batch", raw=_nested_batch(100_000, "deep"))
    assert (response.status_code, response.json()["code"]) == (400, "invalid_json")
    # Around the interpreter's limit (where it falls depends on the stack the request runs on): too
    # deep to parse, or parsed and too deep to store as metadata: 400 either way, or fine and charged.
    for depth in range(700, 1_000, 15):
        response = as_service.post("charges/batch", raw=_nested_batch(depth, f"k{depth}"))
        assert response.status_code in (201, 400), (depth, response.status_code)


@pytest.mark.parametrize(
    "body",
    [
        {"action": "gmail-send", "idempotency_key": "k", "lead": "lead\x007"},
        {"action": "gmail-send", "idempotency_key": "k", "metadata": {"note": "a\x00b"}},
    ],
)
def test_a_nul_character_is_422_not_a_server_error(as_service, workspace, body):
    """PostgreSQL stores no NUL in text or jsonb: refused at the door, naming the body."""
    response = as_service.post("charges", body)
    assert (response.status_code, response.json()["field"]) == (422, "body")
    assert not LedgerEntry.objects.filter(workspace=workspace, idempotency_key="k").exists()


def test_an_escaped_backslash_before_u0000_is_just_text(as_service, workspace):
    response = as_service.post("charges", {"action": "gmail-send", "idempotency_key": "k", "lead": "C:\\u0000"})
    assert response.status_code == 201
    assert response.json()["entry"]["lead"] == "C:\\u0000"
