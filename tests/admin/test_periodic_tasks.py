"""The periodic jobs in the admin (django-celery-beat's own pages): visible, and pausable."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from sigora.celery import BEAT_SCHEDULE, app
from tests.admin.conftest import make_person

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def keep_the_test_transaction(monkeypatch):
    """Beat tidies stale connections before it reads; in a test that would close the test's transaction."""
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)


CHANGELIST = "admin:django_celery_beat_periodictask_changelist"


def start_beat() -> DatabaseScheduler:
    """What `celery -A sigora beat` does first: copy the declared schedule into the tables."""
    return DatabaseScheduler(app=app, lazy=False)


def test_beat_copies_the_declared_schedule_into_the_admins_tables():
    beat = start_beat()
    tasks = {task.name: task for task in PeriodicTask.objects.select_related("interval")}
    for name, job in BEAT_SCHEDULE.items():
        task = tasks[name]
        assert task.task == job["task"] and task.enabled
        assert (
            task.interval.every * {"seconds": 1, "minutes": 60}[task.interval.period] == job["schedule"].total_seconds()
        )
        # The job's expiry reaches the task: beat's database entries read it from expire_seconds.
        assert task.expire_seconds == job["options"]["expire_seconds"]
        assert beat.schedule[name].options["expires"] == job["options"]["expire_seconds"]  # as each run is sent


def test_staff_see_the_jobs_and_pause_one_and_it_stays_paused_when_beat_restarts(client, billing_staff):
    start_beat()
    client.force_login(billing_staff)
    listed = client.get(reverse(CHANGELIST))
    assert listed.status_code == 200
    for name in BEAT_SCHEDULE:
        assert name in listed.content.decode()

    task = PeriodicTask.objects.get(name="run-auto-topups")
    response = client.post(reverse(CHANGELIST), {"action": "disable_tasks", "_selected_action": [task.pk]})
    assert response.status_code == 302
    assert PeriodicTask.objects.get(pk=task.pk).enabled is False

    beat = start_beat()  # a restart re-declares the schedule
    assert PeriodicTask.objects.get(pk=task.pk).enabled is False
    assert "run-auto-topups" not in beat.schedule and "reset-periods" in beat.schedule

    client.post(reverse(CHANGELIST), {"action": "enable_tasks", "_selected_action": [task.pk]})
    assert PeriodicTask.objects.get(pk=task.pk).enabled is True


def test_the_change_form_pauses_a_job_too(client):
    start_beat()
    client.force_login(make_person("superuser"))
    task = PeriodicTask.objects.get(name="reset-periods")
    page = client.get(reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]))
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None or value is False:
            continue
        data[name] = value.pk if hasattr(value, "pk") else value
    data.pop("enabled")
    response = client.post(reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert PeriodicTask.objects.get(pk=task.pk).enabled is False


@pytest.mark.parametrize("role", ["staff", "member"])
def test_without_permission_the_jobs_stay_as_they_are(client, role):
    start_beat()
    client.force_login(make_person(role))
    task = PeriodicTask.objects.get(name="reset-periods")
    assert client.get(reverse(CHANGELIST)).status_code == (403 if role == "staff" else 302)
    client.post(reverse(CHANGELIST), {"action": "disable_tasks", "_selected_action": [task.pk]})
    assert PeriodicTask.objects.get(pk=task.pk).enabled is True
