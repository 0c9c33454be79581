"""Settings shared by every environment. Environment-specific modules import and adjust these."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

from sigora.settings.env import env_bool, env_database_timeouts, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# --- Core -----------------------------------------------------------------------------------

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # Django
    "sigora.apps.SigoraAdminConfig",  # django.contrib.admin with the project's site (sigora/admin.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # Third party
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "csp",  # the Content-Security-Policy header (sigora/csp.py)
    "ninja",  # the API's docs page uses the Swagger UI files its wheel ships (served from here)
    "django_otp",  # the second factor (billing/second_factor.py): TOTP apps, and backup codes
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",  # failed sign-ins and lockouts (see Auth below)
    # Local
    "billing",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # /healthz and /readyz are answered here, before everything below (sigora/health.py).
    "sigora.health.HealthCheckMiddleware",
    # /api/v1/ is answered here: none of the middleware below runs for it (api/middleware.py).
    "api.middleware.ApiFirstMiddleware",
    # Every page and static file gets the Content-Security-Policy (sigora/csp.py); the API's JSON its own.
    "sigora.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session passed a second factor (django-otp).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A session that owes its second factor goes nowhere but that step (billing/second_factor.py).
    "billing.middleware.SecondFactorMiddleware",
    "billing.middleware.ReaderTimeZoneMiddleware",
    # Last, as django-axes asks: turns a sign-in it refused into the lockout page (billing/views/lockouts.py).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "sigora.urls"
WSGI_APPLICATION = "sigora.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL only ---------------------------------------------------------------
# DATABASE_URL points at a real server (CI, production). Without it, an embedded PostgreSQL
# from a wheel starts in .pgdata/ so the quick start needs nothing but Python.

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
            conn_health_checks=True,
        )
    }
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// URL: PostgreSQL is the only database")
else:
    from sigora.embedded_db import database_settings

    DATABASES = {"default": database_settings(Path(env_str("EMBEDDED_PG_DIR", str(BASE_DIR / ".pgdata"))))}

# Bind parameters server-side and let psycopg keep prepared statements: a statement run
# prepare_threshold times on a connection is planned once for it. Every signed-in request reads
# the user with their memberships (a six-table select_related); bound client-side, Django's
# default, the server plans it afresh each time, and the floor view took 8.2–9.7 ms instead of
# 3.6–5.0 (docs/performance.md, 2026-12-06). The charging statement is prepared the same way.
# (Behind PgBouncer before 1.21, set DB_PREPARE_THRESHOLD to "": binding stays server-side,
# statements are not kept.)
_prepare_threshold = env_str("DB_PREPARE_THRESHOLD", "5")
_DATABASE_OPTIONS = {
    "server_side_binding": True,
    "prepare_threshold": int(_prepare_threshold) if _prepare_threshold else None,
}
# Seconds to wait for a connection (libpq waits for ever by default, so a database host that drops
# packets would hold every request, and /readyz, for the kernel's two minutes). A URL's own
# ?connect_timeout= wins.
_CONNECT_TIMEOUT = env_int("DB_CONNECT_TIMEOUT", 5)
# Behind PgBouncer in transaction pooling, a cursor declared WITH HOLD outside a transaction (what
# QuerySet.iterator() does) may be fetched from another server connection: there, turn them off.
_NO_SERVER_SIDE_CURSORS = env_bool("DB_DISABLE_SERVER_SIDE_CURSORS", False)


def _database_options(database: dict) -> None:
    options = database.setdefault("OPTIONS", {})
    options.update(_DATABASE_OPTIONS)
    options.setdefault("connect_timeout", _CONNECT_TIMEOUT)
    database["DISABLE_SERVER_SIDE_CURSORS"] = _NO_SERVER_SIDE_CURSORS


_database_options(DATABASES["default"])

# PostgreSQL's bounds on one statement, one lock wait and a transaction left open and idle (ms, 0: none),
# set on each connection as it opens (billing/db.py: libpq's startup `options` would cost no round trip,
# but PgBouncer 1.18 refuses them). None here; production's are in production.py. A statement past its
# bound is cancelled, its transaction rolled back, and the API answers 503 `database_timeout`.
DATABASE_TIMEOUTS = env_database_timeouts(statement=0, lock=0, idle_in_transaction=0)

# A streaming replica, for the reads that may lag a moment behind the primary: the staff ledger
# list and its CSV, the customer's CSV export, the admin's big append-only tables (ledger, holds,
# Stripe events). They ask ``billing.db.replica_or_primary()`` for the alias, by name; every other
# read (charging, balances, every page showing what its reader just changed) and every write uses
# the primary, and so does a read inside a transaction. The router (sigora/db_router.py) keeps
# writes and migrations off the replica.
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = dj_database_url.parse(
        DATABASE_REPLICA_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
    )
    if DATABASES["replica"]["ENGINE"] != "django.db.backends.postgresql":
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("DATABASE_REPLICA_URL must be a postgres:// URL: PostgreSQL is the only database")
    _database_options(DATABASES["replica"])
# The alias lagging reads go to: "" reads everything from the primary.
REPLICA_DATABASE = "replica" if DATABASE_REPLICA_URL else ""
DATABASE_ROUTERS = ["sigora.db_router.PrimaryReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ------------------------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- HTTP API (/api/v1/) ---------------------------------------------------------------------------
# A token-bucket rate limit per credential (api/ratelimit.py; 0 turns it off), shared through
# Redis when a URL is set (by default REDIS_URL), else kept per process. Bodies are refused (413) above these sizes,
# from Content-Length, before they are read; a batch of 1,000 events with metadata fits in 5 MiB.

API_RATE_LIMIT = env_int("API_RATE_LIMIT", 6_000)
API_RATE_WINDOW_SECONDS = env_int("API_RATE_WINDOW_SECONDS", 60)
API_RATE_LIMIT_REDIS_URL = env_str("API_RATE_LIMIT_REDIS_URL", REDIS_URL or "")
# Seconds a process keeps a credential it verified (api/credentials.py: a revocation reaches every
# process at its next request through the rate limit's Redis; this bounds it without one). 0: off.
API_CREDENTIAL_CACHE_SECONDS = env_int("API_CREDENTIAL_CACHE_SECONDS", 1)
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 64 * 1024)
API_MAX_BATCH_BODY_BYTES = env_int("API_MAX_BATCH_BODY_BYTES", 5 * 1024 * 1024)

# --- Pages ------------------------------------------------------------------------------------
# How often an open billing page asks whether the balance moved (a 304 while it has not); the
# usage and transactions regions refresh only when it has. Tests shorten it.
BALANCE_POLL_SECONDS = 4

# --- Content-Security-Policy (django-csp; sigora/csp.py, docs/operations.md) -------------------
# Enforced everywhere, so development and the browser tests see what production does: scripts, styles,
# images, fonts and requests from this origin only; no inline script or style (not even an attribute),
# no eval, no plugins, no framing, no <base>. img-src allows data: for the few images drawn in place (the
# stylesheets' icons, a QR code). form-action adds Stripe's hosted pages, from the Stripe settings, per
# request. A view that needs more says so with django-csp's decorators, documented beside it.

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "manifest-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}

# --- Payments (Stripe) --------------------------------------------------------------------------
# With no key, buying is off (the pages say so) and nothing else changes. STRIPE_API_BASE points
# the library at another address: only the dev and test settings set it, at the offline double,
# and never alongside a real key (see dev.py).

STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
STRIPE_API_BASE = ""
STRIPE_CURRENCY = "usd"
# Stripe's hosted pages, where a purchase and the portal send the browser: the pages' forms may lead there
# (the Content-Security-Policy's form-action). A Checkout custom domain is added here (docs/operations.md).
STRIPE_HOSTED_ORIGINS = env_list("STRIPE_HOSTED_ORIGINS", ["https://checkout.stripe.com", "https://billing.stripe.com"])
# How far back the reconciliation job looks for paid Checkout Sessions no webhook fulfilled.
STRIPE_RECONCILE_HOURS = 48

# --- Background jobs (Celery) ------------------------------------------------------------------
# Redis is the broker when REDIS_URL is set; otherwise tasks run eagerly, in-process.

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves it to be redelivered: tasks are idempotent
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"  # the schedule: sigora/celery.py

# --- Auth -------------------------------------------------------------------------------------

# django-axes first: it refuses a locked-out sign-in before any password is checked; then ModelBackend,
# whose per-request user read also brings the user's memberships (billing/auth.py).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "billing.auth.MembershipsBackend"]

# Argon2 hashes every new or changed password (OWASP's first choice; Django recommends it). PBKDF2 stays
# to verify the hashes made before: Django re-hashes a password with Argon2 when it next signs in.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
]

# Failed sign-ins (the customer's page and the admin's: both call authenticate() with the request) are
# counted by django-axes in the database, per account and per client address separately: an account with
# LOGIN_FAILURE_LIMIT failures within LOGIN_COOLOFF_MINUTES, from anywhere (a guess spread over many
# addresses), is locked, and so is an address with that many, on any accounts (one password sprayed over
# many). The lock lifts LOGIN_COOLOFF_MINUTES after the failure that reached the limit; tries while locked
# are refused without counting, so the time the lockout page gives holds. Staff can lift it sooner
# (docs/operations.md, Lockouts). A success does not clear the count: signing in to one's own account
# would otherwise wipe the count of the address one is guessing from.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username"], ["ip_address"]]
AXES_RESET_ON_SUCCESS = False
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_USERNAME_CALLABLE = "billing.auth.attempt_username"
AXES_CLIENT_IP_CALLABLE = "sigora.client_ip.client_ip"
AXES_LOCKOUT_CALLABLE = "billing.views.lockouts.locked_out"
AXES_ENABLE_ADMIN = False  # the project registers its own, with "Lift lockout" (billing/admin/lockouts.py)

# How many proxies in front of the app append the client's address to X-Forwarded-For (HAProxy's
# `option forwardfor`): the client is the address the outermost of them saw. 0 (the default): the
# connection's own address, and the header, which anyone can send, is never read (sigora/client_ip.py).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# Password-reset requests, counted per address asked for and per client address, in fixed windows:
# past either limit the page answers as usual and sends nothing (billing/views/password_reset.py).
PASSWORD_RESET_LIMIT_PER_EMAIL = env_int("PASSWORD_RESET_LIMIT_PER_EMAIL", 3)
PASSWORD_RESET_LIMIT_PER_IP = env_int("PASSWORD_RESET_LIMIT_PER_IP", 20)
PASSWORD_RESET_WINDOW_SECONDS = env_int("PASSWORD_RESET_WINDOW_SECONDS", 60 * 60)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "billing:settings_billing"
LOGOUT_REDIRECT_URL = "login"

# The second factor (django-otp): staff always, owners and admins who turn it on (docs/operations.md).
# A wrong code locks that device for 1, 2, 4, 8 … seconds (doubling at each further one): on, as
# by default, and said here so nobody turns it off. The admin never shows a device's secret.
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
OTP_TOTP_ISSUER = "Sigora"
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# --- Internationalisation ---------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files (whitenoise) ----------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))  # where collectstatic writes
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Email ------------------------------------------------------------------------------------

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Sigora Billing <billing@sigora.local>")
# Where emails point people back to (alerts, auto top-up notices).
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# --- Secrets at rest -------------------------------------------------------------------------
# Fernet keys for the BYOK key: the first encrypts, all decrypt (rotation). Environment
# modules decide the default; production insists on real keys.

BYOK_ENCRYPTION_KEYS = env_list("BYOK_ENCRYPTION_KEYS", [])

# --- Logging: refusals, webhooks and errors at INFO, with workspace, action and key; each --------
# successful charge at DEBUG (its ledger entry is its record, and a line per charge cost the hot
# path 30 % of its rate, issue 17).

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "billing": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
