"""Stripe events in the admin: read-only, and a failed one re-run safely."""

from __future__ import annotations

import pytest
from django.urls import reverse

from billing.models import StripeEvent
from tests.admin.conftest import make_person
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:billing_stripeevent_changelist"


def _retry_action(client, *events):
    return client.post(
        reverse(CHANGELIST), {"action": "retry_failed", "_selected_action": [e.pk for e in events]}, follow=True
    )


def test_the_list_and_page_show_status_and_the_handlers_error(client, failed_event, billing_staff):
    row, _ = failed_event
    client.force_login(billing_staff)
    listed = client.get(reverse(CHANGELIST), {"status__exact": "failed"}).content.decode()
    assert "evt_flaky" in listed and "RuntimeError: Stripe could not be reached" in listed
    assert "Flaky Co" in listed
    page = client.get(reverse("admin:billing_stripeevent_change", args=[row.pk])).content.decode()
    assert "Stripe could not be reached" in page and "Re-run this failed event" in page
    assert 'name="_save"' not in page


def test_re_running_a_failed_event_runs_it_once_however_often_it_is_asked(client, failed_event, billing_staff):
    row, handler = failed_event
    client.force_login(billing_staff)
    # Still broken: it stays failed, the attempt counted, the error kept.
    response = _retry_action(client, row)
    assert "Still failing" in response.content.decode()
    row.refresh_from_db()
    assert (row.status, row.attempts, handler.succeeded) == ("failed", 2, 0)

    handler.broken = False
    response = _retry_action(client, row)
    assert "Re-ran 1 event(s) successfully" in response.content.decode()
    row.refresh_from_db()
    assert (row.status, row.error, row.attempts) == ("processed", "", 3)
    # Again, from the list and from the page: nothing runs twice.
    response = _retry_action(client, row)
    assert "nothing was re-run" in response.content.decode()
    page = client.post(reverse("admin:billing_stripeevent_retry", args=[row.pk]), follow=True)
    assert "has not failed" in page.content.decode()
    assert handler.succeeded == 1
    row.refresh_from_db()
    assert row.attempts == 3


def test_the_pages_button_re_runs_a_failed_event(client, failed_event, billing_staff):
    row, handler = failed_event
    handler.broken = False
    client.force_login(billing_staff)
    url = reverse("admin:billing_stripeevent_retry", args=[row.pk])
    assert client.get(url).status_code == 405
    response = client.post(url)
    assert response.status_code == 302
    assert StripeEvent.objects.get(pk=row.pk).status == "processed" and handler.succeeded == 1


@pytest.mark.parametrize("role", ["staff", "member"])
def test_without_the_permission_nothing_is_re_run(client, failed_event, role):
    row, handler = failed_event
    handler.broken = False
    client.force_login(make_person(role))
    listed = client.get(reverse(CHANGELIST))
    if role == "staff":
        assert listed.status_code == 200 and "retry_failed" not in listed.content.decode()
    _retry_action(client, row)
    assert client.post(reverse("admin:billing_stripeevent_retry", args=[row.pk])).status_code in (302, 403)
    assert StripeEvent.objects.get(pk=row.pk).status == "failed" and handler.succeeded == 0


def test_events_are_never_added_changed_or_deleted(client, failed_event):
    row, _ = failed_event
    client.force_login(make_person("superuser"))
    assert client.get(reverse("admin:billing_stripeevent_add")).status_code == 403
    assert (
        client.post(reverse("admin:billing_stripeevent_change", args=[row.pk]), {"status": "processed"}).status_code
        == 403
    )
    assert client.post(reverse("admin:billing_stripeevent_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    assert "delete_selected" not in client.get(reverse(CHANGELIST)).content.decode()
    assert StripeEvent.objects.get(pk=row.pk).status == "failed"


def test_the_workspace_filter_lists_its_events_only(client, failed_event):
    row, _ = failed_event
    client.force_login(make_person("superuser"))
    other = WorkspaceFactory()
    mine = client.get(reverse(CHANGELIST), {"workspace": str(row.workspace_id)}).context["cl"].result_list
    theirs = client.get(reverse(CHANGELIST), {"workspace": str(other.pk)}).context["cl"].result_list
    assert [e.pk for e in mine] == [row.pk] and list(theirs) == []


def test_re_running_an_unknown_event_is_not_found(client, billing_staff):
    client.force_login(billing_staff)
    assert client.post(reverse("admin:billing_stripeevent_retry", args=["abc"])).status_code == 404
    assert client.post(reverse("admin:billing_stripeevent_retry", args=["999999"])).status_code == 404
