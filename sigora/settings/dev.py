"""Local development: what ``make run`` and ``manage.py`` use unless told otherwise."""

from sigora.settings.base import *  # noqa: F403
from sigora.settings.env import env_bool, env_str

DEBUG = env_bool("DEBUG", True)
# Only for a developer's machine; production.py refuses to start without a real key.
SECRET_KEY = env_str("SECRET_KEY", "django-insecure-local-development-only-never-in-production")
STORAGES = {  # no manifest: runserver serves files straight from static/
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve straight from static/, no collectstatic needed

if not BYOK_ENCRYPTION_KEYS:  # noqa: F405
    # A development-only key derived from the dev SECRET_KEY, so `make run` needs no setup.
    import base64
    import hashlib

    BYOK_ENCRYPTION_KEYS = [base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()]
