"""The test suite's settings: fast hashing, mail kept in memory, no external services."""

from sigora.settings.base import *  # noqa: F403
from sigora.settings.env import env_bool, env_int, env_str

DEBUG = False
SECRET_KEY = "tests-only-secret-key-not-used-anywhere-else-0123456789abcdef"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# The replica alias is the test database itself (Django's test MIRROR): the code that reads from it
# runs without a second server. Reads go to it only in tests that turn it on (REPLICA_DATABASE =
# "replica"), with transaction=True: the mirror is a second connection, which sees committed rows only.
DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}  # noqa: F405
REPLICA_DATABASE = ""
LOGGING["loggers"]["billing"]["level"] = "WARNING"  # noqa: F405
WHITENOISE_USE_FINDERS = True  # serve straight from static/, no collectstatic needed

if not BYOK_ENCRYPTION_KEYS:  # noqa: F405
    # A development-only key derived from the dev SECRET_KEY, so `make run` needs no setup.
    import base64
    import hashlib

    BYOK_ENCRYPTION_KEYS = [base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()]

# Tasks run in-process, except in the real worker a test starts against Redis (tests/jobs/test_worker.py),
# which sets CELERY_EAGER=0 and a short visibility timeout so a killed task comes back quickly.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_EAGER", True)
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", CELERY_BROKER_URL)  # noqa: F405
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    # Look for abandoned (unacknowledged) messages every second, not every ~100 s.
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
