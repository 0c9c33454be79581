"""Settings for the Celery worker a test starts as a separate process: the test settings, plus
what only the environment can hand a subprocess — where its mail goes (files the test reads,
since a worker's in-memory outbox dies with it) and the Stripe double the test is running."""

from sigora.settings.env import env_str
from sigora.settings.test import *  # noqa: F403

EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = env_str("TEST_EMAIL_DIR", "")
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = env_str("TEST_STRIPE_API_BASE", "")
