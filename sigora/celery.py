"""The Celery app and its beat schedule, declared here once (the tasks are in billing/tasks.py).

Redis is the broker; with no ``REDIS_URL`` (a newcomer's machine), settings make tasks run
eagerly in-process, so nothing needs a worker to work.

The schedule names tasks by their registered names, so neither this module nor settings import
the billing app. django-celery-beat's DatabaseScheduler copies it into its tables when beat
starts, where staff see each job in the admin (and can pause it: a restart keeps it paused). Its
entries take a job's expiry from ``expire_seconds``; an ``expires`` option is dropped on the way in.
"""

from __future__ import annotations

import os
from datetime import timedelta

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigora.settings.dev")

BEAT_SCHEDULE: dict[str, dict] = {
    # Each workspace's period ends on its own anniversary; a few minutes late is fine, twice is not.
    "reset-periods": {
        "task": "billing.reset_periods",
        "schedule": timedelta(minutes=5),
        "options": {"expire_seconds": 4 * 60},
    },
    # Auto top-up: within a minute of the balance falling below the threshold.
    "run-auto-topups": {
        "task": "billing.run_auto_topups",
        "schedule": timedelta(minutes=1),
        "options": {"expire_seconds": 50},
    },
    # Once per period per threshold (20 % left, bucket used up); a few minutes' delay is fine.
    "send-balance-alerts": {
        "task": "billing.send_balance_alerts",
        "schedule": timedelta(minutes=5),
        "options": {"expire_seconds": 4 * 60},
    },
    # "Paid but no credits" cannot last: any paid Checkout Session no webhook fulfilled.
    "reconcile-payments": {
        "task": "billing.reconcile_payments",
        "schedule": timedelta(minutes=10),
        "options": {"expire_seconds": 9 * 60},
    },
}

app = Celery("sigora")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.beat_schedule = BEAT_SCHEDULE  # kept pending: settings are read when the app first needs them
app.autodiscover_tasks()
