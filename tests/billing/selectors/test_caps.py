"""The daily caps region read alone (after a cap changes), and as the billing page hands it the usage read's figures."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from billing.credits import credits
from billing.selectors import caps_overview, specialist_names
from billing.services import cap_set, charge


def test_caps_and_todays_spend_are_read_when_not_given(workspace, django_assert_num_queries):
    cap_set(workspace=workspace, specialist="outreach", daily_cap=credits(2_000))
    charge(workspace=workspace, action="linkedin-dm", idempotency_key="dm")  # 1,500 credits, outreach
    today = timezone.now().astimezone(workspace.zone).date()
    specialist_names()  # the catalog snapshot, read once per process
    with django_assert_num_queries(2):
        rows = {row.specialist: row for row in caps_overview(workspace_id=workspace.pk, today=today)}
    assert list(rows) == list(specialist_names())
    outreach = rows["outreach"]
    assert (outreach.daily_cap, outreach.spent_today, outreach.percent) == (credits(2_000), credits(1_500), 75)
    assert all(row.daily_cap is None and row.spent_today == 0 for key, row in rows.items() if key != "outreach")
    # Another day: the cap stays, the spend is that day's.
    tomorrow = caps_overview(workspace_id=workspace.pk, today=today + timedelta(days=1))
    assert [(r.daily_cap, r.spent_today) for r in tomorrow if r.specialist == "outreach"] == [(credits(2_000), 0)]


def test_what_the_usage_read_brought_is_not_read_again(workspace, django_assert_num_queries):
    today = timezone.now().date()
    specialist_names()
    with django_assert_num_queries(0):
        rows = caps_overview(workspace_id=workspace.pk, today=today, spent_today={"outreach": 5}, daily_caps={})
    assert [(r.specialist, r.spent_today, r.daily_cap) for r in rows if r.specialist == "outreach"] == [
        ("outreach", 5, None)
    ]
