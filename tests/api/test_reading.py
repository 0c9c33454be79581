"""Balance, transactions, catalog and reply detection over HTTP: the pages' selectors and services."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from billing.models import LeadState
from billing.services import charge
from tests.conftest import fund

pytestmark = pytest.mark.django_db


def test_balance_is_the_balance_cards_figures_exactly(as_key, workspace):
    fund(workspace, plan="8000.5", topup="250")
    body = as_key.get("balance").json()
    assert body["workspace"] == workspace.pk
    assert body["plan"] == {"key": "free", "name": "Free"}
    assert body["allowance"] == {"credits": "10000", "millicredits": 10_000_000}
    assert body["used"] == {"credits": "1999.5", "millicredits": 1_999_500}
    assert body["balance"] == {
        "plan": {"credits": "8000.5", "millicredits": 8_000_500},
        "topup": {"credits": "250", "millicredits": 250_000},
        "total": {"credits": "8250.5", "millicredits": 8_250_500},
    }
    assert datetime.fromisoformat(body["period_end"]) == workspace.wallet.period_end
    assert body["level"] == "ok"


def _keys(response) -> list[str]:
    return [row["idempotency_key"] for row in response.json()["entries"]]


def test_transactions_page_by_cursor_newest_first_without_gaps(as_service, workspace):
    for n in range(7):
        charge(workspace=workspace, action="gmail-send", idempotency_key=f"m{n}")
    first = as_service.get("transactions", {"limit": 3, "kind": "usage"})
    assert first.status_code == 200
    assert _keys(first) == ["m6", "m5", "m4"]
    cursor = first.json()["next_cursor"]
    second = as_service.get("transactions", {"limit": 3, "kind": "usage", "cursor": cursor})
    third = as_service.get("transactions", {"limit": 3, "kind": "usage", "cursor": second.json()["next_cursor"]})
    assert _keys(second) == ["m3", "m2", "m1"]
    assert _keys(third) == ["m0"]
    assert third.json()["next_cursor"] is None
    row = first.json()["entries"][0]
    assert row["action"] == "gmail-send"
    assert row["specialist"] == "outreach"
    assert row["unit"] == "call"
    assert row["amount"] == {"credits": "-200", "millicredits": -200_000}
    assert row["plan_delta"] == {"credits": "-200", "millicredits": -200_000}


def test_transactions_name_each_entrys_specialist_by_key_even_when_two_share_a_label(as_service, workspace):
    from billing.catalog_cache import catalog_invalidate
    from billing.models import Specialist

    Specialist.objects.filter(key="sourcing").update(label="Sales")
    Specialist.objects.filter(key="outreach").update(label="Sales")
    catalog_invalidate()
    charge(workspace=workspace, action="crustdata-search", idempotency_key="search")  # sourcing's
    charge(workspace=workspace, action="gmail-send", idempotency_key="send")  # outreach's
    rows = as_service.get("transactions", {"kind": "usage"}).json()["entries"]
    assert [(row["idempotency_key"], row["specialist"]) for row in rows] == [
        ("send", "outreach"),
        ("search", "sourcing"),
    ]


def test_transactions_filter_by_specialist_tool_kind_and_the_workspaces_days(as_service, workspace):
    workspace.time_zone = "America/New_York"
    workspace.save()
    ny = ZoneInfo("America/New_York")
    with time_machine.travel(datetime(2027, 5, 1, 23, 30, tzinfo=ny), tick=False):  # May 2 in UTC
        charge(workspace=workspace, action="gmail-send", idempotency_key="late")
    with time_machine.travel(datetime(2027, 5, 2, 9, 0, tzinfo=ny), tick=False):
        charge(workspace=workspace, action="claude-haiku", quantity=7, idempotency_key="ai", specialist="sourcing")
        charge(workspace=workspace, action="crustdata-search", idempotency_key="search")
    assert _keys(as_service.get("transactions", {"date_from": "2027-05-01", "date_to": "2027-05-01"})) == ["late"]
    assert _keys(as_service.get("transactions", {"specialist": "sourcing"})) == ["search", "ai"]
    assert _keys(as_service.get("transactions", {"action": "claude-haiku"})) == ["ai"]
    assert "late" not in _keys(as_service.get("transactions", {"kind": "plan_grant"}))
    assert as_service.get("transactions", {"kind": "plan_grant"}).json()["entries"][0]["kind"] == "plan_grant"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kind": "gift"}, "kind"),
        ({"specialist": "nobody"}, "specialist"),
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_from": "2027-05-02", "date_to": "2027-05-01"}, "date_to"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "9" * 5_000}, "cursor"),  # past what int() reads
        ({"limit": "²"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"action": "claude\x00haiku"}, "action"),
        ({"date_to": "9999-12-31"}, "date_to"),
    ],
)
def test_bad_transaction_filters_are_422_naming_the_parameter(as_service, params, field):
    response = as_service.get("transactions", params)
    assert response.status_code == 422
    assert response.json()["field"] == field


def test_transactions_never_show_another_workspaces_entries(as_key, workspace):
    from tests.factories import WorkspaceFactory

    other = WorkspaceFactory()
    charge(workspace=other, action="gmail-send", idempotency_key="theirs")
    charge(workspace=workspace, action="gmail-send", idempotency_key="ours")
    assert "theirs" not in _keys(as_key.get("transactions"))
    assert "ours" in _keys(as_key.get("transactions"))


def test_the_catalog_carries_the_help_pages_figures(as_key):
    body = as_key.get("catalog").json()
    actions = {a["key"]: a for a in body["actions"]}
    assert actions["claude-haiku"]["unit_price"] == {"credits": "0.1", "millicredits": 100}
    assert actions["claude-haiku"]["unit"] == "token"
    assert actions["linkedin-dm"]["unit_price"] == {"credits": "1500", "millicredits": 1_500_000}
    plans = {p["key"]: p for p in body["plans"]}
    assert plans["pro"]["per_seat"] is True
    assert plans["pro"]["allowance"]["credits"] == "80000"
    assert sorted(p["discount_percent"] for p in body["packs"]) == [0, 15, 30, 40]
    assert {"key": "outreach", "label": "Sales / Outreach"} in body["specialists"]


def test_the_catalog_needs_no_workspace_even_for_a_service_token(client, service_token):
    from tests.api.conftest import Api

    assert Api(client, service_token).get("catalog").status_code == 200


def test_a_reply_pauses_the_lead_and_resume_lets_it_be_charged_again(as_service, workspace):
    paused = as_service.post("replies", {"lead": "lead/7 (ACME)"})
    assert paused.status_code == 200
    assert paused.json()["paused"] is True
    assert LeadState.objects.get(workspace=workspace, lead="lead/7 (ACME)").paused
    step = {"action": "gmail-send", "idempotency_key": "step-2", "lead": "lead/7 (ACME)"}
    assert as_service.post("charges", step).status_code == 409
    resumed = as_service.post("replies/resume", {"lead": "lead/7 (ACME)"})
    assert resumed.json()["paused"] is False
    assert resumed.json()["resumed_at"] is not None
    assert as_service.post("charges", step).status_code == 201


@pytest.mark.parametrize("body", [{}, {"lead": ""}, {"lead": 7}, {"lead": "x" * 201}, {"lead": "a", "b": 1}])
def test_a_reply_needs_a_lead(as_service, body):
    response = as_service.post("replies", body)
    assert response.status_code == 422
    assert response.json()["field"] in {"lead", "b"}


@pytest.mark.parametrize(
    ("path", "params"), [("transactions", {"kinds": "usage"}), ("balance", {"x": "1"}), ("catalog", {"": "false"})]
)
def test_an_undeclared_query_parameter_is_422_not_ignored(as_service, path, params):
    """A misspelt filter (`kinds`) must not silently list everything."""
    response = as_service.get(path, params)
    assert response.status_code == 422
    assert response.json()["field"] == next(iter(params))
