"""The stack's parts in the order they start (each needs the ones before it); the supervisor stops them in reverse.

Redis → primary → replica → PgBouncer → migrate, collectstatic → app1, app2 → HAProxy → worker1, worker2, beat
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Mapping

import psycopg
import redis

from stack import postgres
from stack.config import (
    DATABASE,
    HOST,
    ROOT,
    SESSION_ALIAS,
    Config,
    app_environment,
    app_server_command,
    celery_beat_command,
    celery_worker_command,
    config_from,
    manage_command,
    secrets_load_or_create,
    stripe_double_command,
)
from stack.files import PGBOUNCER_USERLIST, backends_up, haproxy_cfg, pgbouncer_ini, stack_databases
from stack.supervisor import Service, StepFailed, Stopping, Supervisor

TOOLS = {"pgbouncer": "pgbouncer", "haproxy": "haproxy", "redis-server": "redis-server"}  # command: Debian package
NODES_UP_TIMEOUT = 30.0  # seconds for HAProxy to see both nodes healthy once everything started


def accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def nodes_status(config: Config) -> dict[str, str]:
    """HAProxy's view of each app node (UP, DOWN, …), from its statistics page."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{config.ports.stats}/;csv", timeout=2) as answer:
            return backends_up(answer.read().decode())
    except OSError:
        return {}


def tool(command: str) -> str | None:
    """Where a Debian tool is: on PATH, or in the sbin folders a non-login shell may leave off it."""
    return shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin:/usr/local/sbin")


def tools_missing(config: Config) -> list[str]:
    needed = {"pgbouncer", "haproxy"} | ({"redis-server"} if config.own_redis else set())
    return sorted(TOOLS[command] for command in needed if not tool(command))


class Stack:
    def __init__(self, config: Config, environ: Mapping[str, str]) -> None:
        self.config = config
        self.pg = postgres.binaries_for(environ)
        self.supervisor = Supervisor(logs=config.logs)

    # --- Each part ------------------------------------------------------------------------------

    def _redis(self) -> None:
        if not self.config.own_redis:
            if not redis_answers(self.config.redis_url):
                raise StepFailed(f"REDIS_URL={self.config.redis_url} does not answer")
            print(f"  redis      the machine's, {self.config.redis_url}")
            return
        folder = self.config.dir / "redis"
        folder.mkdir(exist_ok=True)
        argv = [tool("redis-server"), "--bind", HOST, "--port", str(self.config.ports.redis), "--dir", str(folder)]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.supervisor.start(Service("redis", argv, ready=lambda: redis_answers(self.config.redis_url)))

    def _cluster(self, name: str, port: int) -> Service:
        data = self.config.dir / name
        return Service(
            name,
            postgres.server_command(self.pg, data, port),
            user=self.pg.user,
            ready=lambda: postgres.answers(port),
            stop_signal=signal.SIGINT,  # fast shutdown: roll back open transactions, checkpoint, exit
            stop_timeout=60,
        )

    def _primary(self) -> None:
        data = self.config.dir / "primary"
        if not (data / "PG_VERSION").exists():
            postgres.data_dir_prepare(data, self.pg)
            self.supervisor.run_step("initdb", postgres.initdb_command(self.pg, data), user=self.pg.user)
        self.supervisor.start(self._cluster("primary", self.config.ports.primary))
        postgres.database_ensure(self.config.ports.primary)

    def _replica(self) -> None:
        data, primary_port = self.config.dir / "replica", self.config.ports.primary
        # A standby of this primary has its slot there; anything else (a primary made afresh) is copied again.
        if not (postgres.is_standby(data) and postgres.slot_exists(primary_port)):
            shutil.rmtree(data, ignore_errors=True)
            postgres.slot_drop(primary_port)
            postgres.data_dir_prepare(data, self.pg)
            command = postgres.basebackup_command(self.pg, data, primary_port)
            self.supervisor.run_step("basebackup", command, user=self.pg.user)
        replica = self._cluster("replica", self.config.ports.replica)
        replica.ready = lambda: postgres.streaming(self.config.ports.replica)
        self.supervisor.start(replica)

    def _pgbouncer(self) -> None:
        folder = self.config.dir / "pgbouncer"
        folder.mkdir(exist_ok=True)
        userlist = folder / "userlist.txt"
        userlist.write_text(PGBOUNCER_USERLIST)
        ini = folder / "pgbouncer.ini"
        port = self.config.ports.pgbouncer
        ini.write_text(pgbouncer_ini(port=port, databases=stack_databases(self.config), userlist=userlist))
        service = Service(
            "pgbouncer",
            [tool("pgbouncer"), str(ini)],
            user=self.pg.user,  # PgBouncer refuses root too
            ready=lambda: postgres.answers(port, DATABASE),
            stop_signal=signal.SIGINT,  # safe shutdown: wait for the transactions under way
            stop_timeout=15,
        )
        self.supervisor.start(service)

    def _app(self, secret: Mapping[str, str]) -> None:
        direct = app_environment(self.config, secret, route="direct")  # schema changes never through a pool
        self.supervisor.run_step("migrate", manage_command("migrate", "--no-input"), env=direct)
        self.supervisor.run_step("static", manage_command("collectstatic", "--no-input", "--verbosity=0"), env=direct)
        if self.config.stripe_double:
            self._stripe_double(direct)
        nodes = app_environment(self.config, secret, route="session")
        workers = app_environment(self.config, secret, route="transaction")
        for number, port in enumerate(self.config.ports.apps, start=1):
            node = Service(
                f"app{number}",
                app_server_command(self.config, port),
                env=nodes,
                cwd=ROOT,
                ready=lambda port=port: accepts(port),
                stop_timeout=30,  # the server's graceful timeout is 20 s (stack/servers.py)
            )
            self.supervisor.start(node)
        self._haproxy()
        for number in (1, 2):
            worker = Service(f"worker{number}", celery_worker_command(self.config, number), env=workers, cwd=ROOT)
            self.supervisor.start(worker)  # warm shutdown on SIGTERM: finish the task under way (acks late)
        self.supervisor.start(Service("beat", celery_beat_command(self.config), env=workers, cwd=ROOT))

    def _stripe_double(self, direct: Mapping[str, str]) -> None:
        """The offline Stripe double (no STRIPE_SECRET_KEY), with the catalog synced into it, as `make run` does.

        It keeps its state in memory: restarted, it knows no earlier payment (a development tool).
        """
        port = self.config.ports.stripe
        double = Service("stripe", stripe_double_command(self.config), cwd=ROOT, ready=lambda: accepts(port))
        self.supervisor.start(double)
        self.supervisor.run_step("catalog", manage_command("sync_stripe_catalog", "--wait", "15"), env=direct)

    def _haproxy(self) -> None:
        cfg = self.config.dir / "haproxy.cfg"
        cfg.write_text(haproxy_cfg(self.config))
        service = Service(
            "haproxy",
            [tool("haproxy"), "-db", "-f", str(cfg)],
            ready=lambda: accepts(self.config.ports.http) and accepts(self.config.ports.stats),
            stop_signal=signal.SIGUSR1,  # soft stop: stop listening, finish the requests under way
            stop_timeout=35,
        )
        self.supervisor.start(service)

    def _nodes_up(self) -> None:
        deadline = time.monotonic() + NODES_UP_TIMEOUT
        while set((status := nodes_status(self.config)).values()) != {"UP"}:
            if time.monotonic() > deadline:
                print(
                    f"stack: WARNING: HAProxy sees the app nodes as {status} after {NODES_UP_TIMEOUT:.0f} s: "
                    f"does {self.config.health_path} answer 200 (STACK_HEALTH_PATH)? See {self.config.logs}/"
                )
                return
            self.supervisor.pause(0.5)
        print(f"  balancer   sees {', '.join(f'{name} {state}' for name, state in sorted(status.items()))}")

    # --- The whole --------------------------------------------------------------------------------

    def start(self) -> None:
        config = self.config
        for folder in (config.dir, config.logs, config.run):
            folder.mkdir(parents=True, exist_ok=True)
        config.dir.chmod(0o755)  # the servers' user must reach its folders inside
        secret = secrets_load_or_create(config.dir / "env")
        print(f"stack: starting in {config.dir}; PostgreSQL from {self.pg.source}")
        if (config.dir / "primary" / "PG_VERSION").exists() and (
            mismatch := postgres.cluster_mismatch(self.pg, config.dir / "primary")
        ):
            raise StepFailed(mismatch)
        self._redis()
        self._primary()
        self._replica()
        self._pgbouncer()
        self._app(secret)
        self._nodes_up()

    def summary(self) -> str:
        p = self.config.ports
        return "\n".join(
            [
                f"stack: up. {self.config.url}/  (Ctrl-C stops it all)",
                f"  balancer stats  http://{HOST}:{p.stats}/",
                f"  app nodes       {', '.join(f'{HOST}:{port}' for port in p.apps)}",
                f"  health check    {self.config.health_path}",
                f"  PgBouncer       {self.config.database_url(p.pgbouncer, SESSION_ALIAS)} (session: the nodes)",
                f"                  {self.config.database_url(p.pgbouncer)} (transaction: workers, beat)",
                f"  primary         {self.config.database_url(p.primary)}",
                f"  replica         {self.config.database_url(p.replica)} (streaming)",
                f"  Redis           {self.config.redis_url}",
                *(
                    [f"  Stripe double   http://{HOST}:{p.stripe}/ (no STRIPE_SECRET_KEY)"]
                    if self.config.stripe_double
                    else []
                ),
                f"  logs            {self.config.logs}/",
            ]
        )

    def run(self) -> int:
        """Start everything, run until SIGINT/SIGTERM/SIGHUP, stop everything; 0, or 1 if starting failed."""
        missing = tools_missing(self.config)
        if missing:
            print(
                f"stack: missing {', '.join(missing)}: `make stack` installs them (apt-get install {' '.join(missing)})"
            )
            return 1
        self.supervisor.handle_signals()
        status = 0
        try:
            self.start()
            print(self.summary(), flush=True)
            self.supervisor.watch()
        except Stopping:
            pass
        except (StepFailed, OSError, psycopg.Error) as failed:
            print(f"stack: could not start: {failed}", file=sys.stderr)
            status = 1
        finally:
            print("stack: stopping", flush=True)
            self.supervisor.stop_all()
            print("stack: stopped", flush=True)
        return status


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # each line as it happens, under make too
    return Stack(config_from(os.environ), os.environ).run()
