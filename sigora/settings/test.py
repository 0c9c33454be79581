"""The test suite's settings: fast hashing, mail kept in memory, no external services."""

from sigora.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = "tests-only-secret-key-not-used-anywhere-else-0123456789abcdef"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LOGGING["loggers"]["billing"]["level"] = "WARNING"  # noqa: F405
WHITENOISE_USE_FINDERS = True  # serve straight from static/, no collectstatic needed

if not BYOK_ENCRYPTION_KEYS:  # noqa: F405
    # A development-only key derived from the dev SECRET_KEY, so `make run` needs no setup.
    import base64
    import hashlib

    BYOK_ENCRYPTION_KEYS = [base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()]

# Tasks run in-process unless a test starts a real worker against Redis (tests/jobs/).
CELERY_TASK_ALWAYS_EAGER = True
