"""The admin's lists may read a replica that lags; what an action decides, it reads from the primary."""

from django.urls import reverse

from billing.models import StripeEvent
from tests.conftest import REPLICA_TEST


@REPLICA_TEST
def test_re_running_failed_events_finds_them_on_the_primary_while_the_replica_lags(
    client, lagging_replica, failed_event, billing_staff
):
    row, handler = failed_event  # recorded (and failed) after the replica's snapshot: not on it yet
    handler.broken = False
    client.force_login(billing_staff)
    response = client.post(
        reverse("admin:billing_stripeevent_changelist"),
        {"action": "retry_failed", "_selected_action": [row.pk]},
        follow=True,
    )
    assert "Re-ran 1 event(s) successfully." in response.content.decode()
    assert StripeEvent.objects.get(pk=row.pk).status == StripeEvent.Status.PROCESSED
    assert handler.succeeded == 1
