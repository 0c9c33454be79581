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

# No Stripe key: use the offline Stripe double that `make run` starts beside the server
# (stripe_double/). A real key (sk_live_/sk_test_ from Stripe) always talks to Stripe.
if not STRIPE_SECRET_KEY:  # noqa: F405
    STRIPE_SECRET_KEY = "sk_test_offline_double"
    STRIPE_WEBHOOK_SECRET = "whsec_offline_double_dev_only"
    STRIPE_API_BASE = env_str("STRIPE_DOUBLE_URL", "http://127.0.0.1:12111")
