"""The Celery app: Redis as the broker; the periodic schedule is declared in billing/tasks.py.

With no ``REDIS_URL`` (a newcomer's machine), settings make tasks run eagerly in-process, so
nothing needs a worker to work.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigora.settings.dev")

app = Celery("sigora")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
