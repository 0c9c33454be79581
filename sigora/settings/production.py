"""Production: every secret from the environment, HTTPS only. Passes ``check --deploy``."""

from sigora.settings.base import *  # noqa: F403
from sigora.settings.env import env_bool, env_database_timeouts, env_int, env_list, env_required, env_str

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_required(
    "SECRET_KEY", "a long random string, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(50))'`"
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    env_required("ALLOWED_HOSTS", "the comma-separated host names this service answers to")

BYOK_ENCRYPTION_KEYS = env_list("BYOK_ENCRYPTION_KEYS", [])
if not BYOK_ENCRYPTION_KEYS:
    env_required("BYOK_ENCRYPTION_KEYS", "comma-separated Fernet keys (newest first) that encrypt stored BYOK keys")

# No request may hold the database for long: a statement gets 10 s, a lock wait 5 s (a charge holds its
# wallet's row for one statement, milliseconds; docs/performance.md), a transaction left open and idle 60 s
# (its connection is closed). Below HAProxy's 30 s `timeout server`, so the caller gets the API's JSON 503
# rather than the balancer's 504. Long one-off work (a migration building an index on a big table) runs
# with DB_STATEMENT_TIMEOUT_MS=0 (docs/operations.md).
DATABASE_TIMEOUTS = env_database_timeouts(statement=10_000, lock=5_000, idle_in_transaction=60_000)

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# A load balancer checks each node over plain HTTP, by address: its checks are not redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (the usual deployment).
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", True)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# That proxy also appends the client's address to X-Forwarded-For: the sign-in lockout and the reset
# throttle count per client address, so they must read it (else every client is the proxy). Only with
# the app reachable through the proxy alone: a client reaching it directly could write that header.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1 if BEHIND_TLS_PROXY else 0)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
# `make stack` with no Stripe key runs the offline Stripe double beside the app (docs/stack.md) and gives
# the app the double's own key, which Stripe never issues: only with that key may the API base move.
if STRIPE_SECRET_KEY == "sk_test_offline_double":  # noqa: F405
    STRIPE_API_BASE = env_str("STRIPE_DOUBLE_URL")
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
