"""What the stack is made of: its folder, its ports, its secrets, and the commands of its Python processes.

Every port and the health-check path can be changed through the environment (``STACK_*``), so a
test can run a second stack beside a developer's. The app server's command is written once, in
``app_server_command``: change the server there and every app node follows.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stack.servers import APP_SERVER, COMMANDS, NODE_THREADS, NODE_WORKERS, Shape

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "sigora"  # on the stack's primary; PgBouncer names the replica's copy REPLICA_ALIAS
REPLICA_ALIAS = "sigora_replica"
SESSION_ALIAS = "sigora_session"  # the primary again, pooled per session: the app nodes (see ROUTES)
HOST = "127.0.0.1"  # the only address anything in the stack binds or reaches
# Settings that belong to the stack, not to its secrets (those are in STACK_DIR/env).
SECRET_NAMES = ("SECRET_KEY", "BYOK_ENCRYPTION_KEYS")
# With no STRIPE_SECRET_KEY the stack runs the offline Stripe double (stripe_double/) with the keys
# `make run` gives it (sigora/settings/dev.py): a key Stripe never issues, local only.
DOUBLE_API_KEY = "sk_test_offline_double"
DOUBLE_WEBHOOK_SECRET = "whsec_offline_double_dev_only"


@dataclass(frozen=True)
class Ports:
    http: int = 8080  # HAProxy: the stack's one front door
    stats: int = 8404  # HAProxy's statistics page (CSV at /;csv)
    apps: tuple[int, ...] = (18001, 18002)
    pgbouncer: int = 16432
    primary: int = 15432
    replica: int = 15433
    redis: int = 16379
    stripe: int = 12112  # the offline Stripe double (beside `make run`'s on 12111)


@dataclass(frozen=True)
class Config:
    dir: Path
    ports: Ports
    health_path: str  # what HAProxy asks each node: /healthz, the process alone (docs/operations.md)
    redis_url: str  # the machine's (REDIS_URL) or the stack's own
    own_redis: bool
    stripe_double: bool = False  # no STRIPE_SECRET_KEY: the stack runs the offline double and pays there
    web_workers: int = NODE_WORKERS
    web_threads: int = NODE_THREADS
    worker_concurrency: int = 2
    app_server: str = APP_SERVER  # stack/servers.py: gunicorn or granian

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def run(self) -> Path:
        return self.dir / "run"

    @property
    def app_connections(self) -> int:
        """Connections the app nodes hold at most (a thread keeps one): the session pool's size."""
        return len(self.ports.apps) * self.web_workers * self.web_threads

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.ports.http}"

    def database_url(self, port: int, name: str = DATABASE) -> str:
        return f"postgres://postgres@{HOST}:{port}/{name}"


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(f"stack: {name} must be a port number (got {raw!r})")
    return int(raw)


def config_from(environ: Mapping[str, str]) -> Config:
    """The stack as the environment describes it (``STACK_*``, ``REDIS_URL``), with the defaults above."""
    defaults = Ports()
    apps = environ.get("STACK_APP_PORTS", "").strip()
    app_ports = tuple(int(each) for each in apps.split(",")) if apps else defaults.apps
    if len(app_ports) != 2:
        raise SystemExit(f"stack: STACK_APP_PORTS names the two app nodes' ports (got {apps!r})")
    ports = Ports(
        http=_port(environ, "STACK_HTTP_PORT", defaults.http),
        stats=_port(environ, "STACK_STATS_PORT", defaults.stats),
        apps=app_ports,
        pgbouncer=_port(environ, "STACK_PGBOUNCER_PORT", defaults.pgbouncer),
        primary=_port(environ, "STACK_PRIMARY_PORT", defaults.primary),
        replica=_port(environ, "STACK_REPLICA_PORT", defaults.replica),
        redis=_port(environ, "STACK_REDIS_PORT", defaults.redis),
        stripe=_port(environ, "STACK_STRIPE_PORT", defaults.stripe),
    )
    taken = [ports.http, ports.stats, *ports.apps, ports.pgbouncer, ports.primary, ports.replica, ports.redis]
    taken += [ports.stripe]
    if len(set(taken)) != len(taken):
        raise SystemExit(f"stack: two parts of the stack were given the same port: {taken}")
    redis_url = environ.get("REDIS_URL", "").strip()
    app_server = environ.get("STACK_APP_SERVER", "").strip() or APP_SERVER
    if app_server not in COMMANDS:
        raise SystemExit(f"stack: STACK_APP_SERVER is one of {', '.join(COMMANDS)} (got {app_server!r})")
    return Config(
        dir=Path(environ.get("STACK_DIR") or ROOT / ".stack").resolve(),
        ports=ports,
        health_path=environ.get("STACK_HEALTH_PATH", "/healthz"),
        redis_url=redis_url or f"redis://{HOST}:{ports.redis}/0",
        own_redis=not redis_url,
        stripe_double=not environ.get("STRIPE_SECRET_KEY", "").strip(),
        web_workers=int(environ.get("STACK_WEB_WORKERS", NODE_WORKERS)),
        web_threads=int(environ.get("STACK_WEB_THREADS", NODE_THREADS)),
        app_server=app_server,
    )


# --- Secrets: made on the first start, kept in STACK_DIR/env (git-ignored, 0600), never committed ---


def secrets_load_or_create(path: Path) -> dict[str, str]:
    """The stack's local-only SECRET_KEY and BYOK key: read from ``path``, or made and written there once."""
    if path.exists():
        found = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        if all(found.get(name) for name in SECRET_NAMES):
            return {name: found[name] for name in SECRET_NAMES}
    from cryptography.fernet import Fernet

    made = {"SECRET_KEY": secrets.token_urlsafe(50), "BYOK_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
    partial = path.with_suffix(".tmp")
    partial.write_text("".join(f"{name}={value}\n" for name, value in made.items()))
    partial.chmod(0o600)
    os.replace(partial, path)
    return made


# --- The Python processes: the app nodes, the workers, beat, and the one-shot steps ----------------


# How each kind of process reaches the primary. Behind PgBouncer 1.18, a transaction pool keeps no
# prepared statement (nor a cursor) across transactions; bench/pgbouncer.py measured charge() through
# it at 0.47–0.48 of straight to PostgreSQL (planned afresh each call), and through a session pool with
# prepared statements kept at 0.91–0.94 (docs/stack.md). So the app nodes, which charge, go through the
# session pool; the workers and beat, off the hot path, share the transaction pool; migrations and
# other one-shot commands go straight to the primary.
ROUTES = {  # name: (PgBouncer alias, or None for the primary itself; prepared statements kept)
    "session": (SESSION_ALIAS, True),
    "transaction": (DATABASE, False),
    "direct": (None, True),
}


def app_environment(config: Config, secret: Mapping[str, str], *, route: str) -> dict[str, str]:
    """Production settings for a Python process of the stack, reaching the primary by ``route`` (ROUTES).

    No TLS on this machine: HAProxy speaks plain HTTP on 127.0.0.1, so the redirect to HTTPS is
    off and the forwarded-protocol header is not trusted. The replica is reached through
    PgBouncer's session pool, where prepared statements are safe whatever the router passes on.
    """
    alias, prepared = ROUTES[route]
    database_url = (
        config.database_url(config.ports.pgbouncer, alias) if alias else config.database_url(config.ports.primary)
    )
    origins = [f"http://{host}:{config.ports.http}" for host in (HOST, "localhost")]
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith("STACK_")},
        "DJANGO_SETTINGS_MODULE": "sigora.settings.production",
        "PYTHONPATH": str(ROOT),
        "DEBUG": "0",
        **secret,
        "DATABASE_URL": database_url,
        "DATABASE_REPLICA_URL": config.database_url(config.ports.pgbouncer, REPLICA_ALIAS),
        "DB_PREPARE_THRESHOLD": "5" if prepared else "",
        "DB_DISABLE_SERVER_SIDE_CURSORS": "0" if prepared else "1",
        "REDIS_URL": config.redis_url,
        "ALLOWED_HOSTS": f"{HOST},localhost",
        "CSRF_TRUSTED_ORIGINS": ",".join(origins),
        "SECURE_SSL_REDIRECT": "0",
        "BEHIND_TLS_PROXY": "0",
        "TRUSTED_PROXY_COUNT": "1",  # HAProxy's `option forwardfor`: the client's address, for the sign-in lockout
        "SITE_URL": config.url,
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",  # no mail server here: to the log
        "STATIC_ROOT": str(config.dir / "static"),
        **(stripe_double_environment(config) if config.stripe_double else {}),
    }


def stripe_double_environment(config: Config) -> dict[str, str]:
    """The app pointed at the stack's offline Stripe double (production settings honour it for its key only)."""
    return {
        "STRIPE_SECRET_KEY": DOUBLE_API_KEY,
        "STRIPE_WEBHOOK_SECRET": DOUBLE_WEBHOOK_SECRET,
        "STRIPE_DOUBLE_URL": f"http://{HOST}:{config.ports.stripe}",
    }


def stripe_double_command(config: Config) -> list[str]:
    """The offline double, delivering its signed events to the balancer's webhook, as `make run` starts it."""
    return [
        sys.executable,
        "-m",
        "stripe_double",
        *("--host", HOST, "--port", str(config.ports.stripe)),
        *("--api-key", DOUBLE_API_KEY, "--webhook-secret", DOUBLE_WEBHOOK_SECRET),
        *("--webhook-url", f"{config.url}/stripe/webhook/"),
    ]


def app_server_command(config: Config, port: int) -> list[str]:
    """One app node: the WSGI server production runs (stack/servers.py), with access logs.

    The one place the stack names its server: ``STACK_APP_SERVER`` (gunicorn or granian) runs the
    other one, e.g. to compare them behind the balancer.
    """
    return COMMANDS[config.app_server](Shape(HOST, port, config.web_workers, config.web_threads))


def celery_worker_command(config: Config, number: int) -> list[str]:
    name = f"stack-worker{number}@%h"
    concurrency = f"--concurrency={config.worker_concurrency}"
    return [sys.executable, "-m", "celery", "-A", "sigora", "worker", "-n", name, concurrency, "--loglevel=INFO"]


def celery_beat_command(config: Config) -> list[str]:
    pidfile = f"--pidfile={config.run / 'beat.pid'}"
    return [sys.executable, "-m", "celery", "-A", "sigora", "beat", pidfile, "--loglevel=INFO"]


def manage_command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args]
