"""The configuration files the stack writes for PgBouncer and HAProxy, from its ports (nothing else in them varies)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from stack.config import DATABASE, HOST, REPLICA_ALIAS, SESSION_ALIAS, Config


def pgbouncer_ini(*, port: int, databases: Mapping[str, str], userlist: Path, pool_size: int = 20) -> str:
    """PgBouncer 1.18 pooling per transaction, on 127.0.0.1 only; ``databases`` maps each alias to its libpq string.

    An alias may end in ``pool_mode=session`` (the charging comparison in bench/pgbouncer.py).
    Trust on loopback, as the clusters behind it: the user must still be in the auth file.
    """
    lines = ["[databases]", *(f"{alias} = {target}" for alias, target in databases.items()), ""]
    lines += [
        "[pgbouncer]",
        f"listen_addr = {HOST}",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {userlist}",
        "admin_users = postgres",
        "pool_mode = transaction",
        "max_client_conn = 1000",
        f"default_pool_size = {pool_size}",
        "reserve_pool_size = 5",
        "server_check_query = SELECT 1",
        # After a failed login to PostgreSQL (it is restarting), refuse clients this long before trying
        # again: the default, 15 s, keeps the app out that long after a restart that takes one.
        "server_login_retry = 2",
        "server_check_delay = 10",
        # psycopg sends nothing else at startup; JDBC-style clients send this one.
        "ignore_startup_parameters = extra_float_digits",
        "log_connections = 0",
        "log_disconnections = 0",
        "",
    ]
    return "\n".join(lines)


MAX_BODY_BYTES = 8 * 1024 * 1024  # the balancer's bound on a request body: above every limit of the app's

PGBOUNCER_USERLIST = '"postgres" ""\n'


def stack_databases(config: Config) -> dict[str, str]:
    """The stack's aliases: the primary per transaction (workers, beat), per session (the app nodes), the replica.

    A session pool hands each client a server connection of its own: it must have room for every
    connection the app nodes hold, and a few more for a node restarting while its old connections close.
    """
    primary = f"host={HOST} port={config.ports.primary} dbname={DATABASE}"
    sessions = f"pool_mode=session pool_size={config.app_connections + 8}"
    return {
        DATABASE: primary,
        SESSION_ALIAS: f"{primary} {sessions}",
        REPLICA_ALIAS: f"host={HOST} port={config.ports.replica} dbname={DATABASE} {sessions}",
    }


def haproxy_cfg(config: Config) -> str:
    """HAProxy in front of the app nodes: round-robin, health-checked, a failed connection retried on the other node.

    Only a connection that failed is retried (``retry-on conn-failure``): the request never reached
    a node, so nothing was charged. A request a node took and then died on is answered 502/504;
    the client retries it with the same idempotency key. Each answer names the node in
    ``X-Served-By``. The runtime socket (``run/haproxy.sock``) lets an operator or the fault test
    drain or disable a node.
    """
    servers = [f"    server app{number} {HOST}:{port}" for number, port in enumerate(config.ports.apps, start=1)]
    return "\n".join(
        [
            "global",
            "    maxconn 4096",
            "    log stdout format raw local0 info",
            f"    stats socket {config.run / 'haproxy.sock'} mode 600 level admin",
            "    hard-stop-after 30s",  # a soft stop (SIGUSR1) finishes requests under way, never longer than this
            "",
            "defaults",
            "    mode http",
            "    log global",
            "    option httplog",
            "    option dontlognull",
            "    option forwardfor",
            "    timeout connect 2s",
            "    timeout client 60s",
            # A request may take a node this long (neither app server bounds it): above PostgreSQL's 10 s
            # statement_timeout and 5 s lock_timeout (sigora/settings/production.py), so a request stuck on
            # the database gets the app's JSON 503 first; past it, the balancer's 504.
            "    timeout server 30s",
            "    timeout http-request 10s",  # the request's head, from its first byte (slow clients)
            "    timeout http-keep-alive 10s",
            "    timeout queue 10s",
            "    retries 3",
            "    retry-on conn-failure",
            "    option redispatch 1",  # every retry goes to another node
            "",
            "frontend web",
            f"    bind {HOST}:{config.ports.http}",
            # No body larger than any the app takes (the API's batch, 5 MiB) reaches a node.
            f"    http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt {MAX_BODY_BYTES} }}",
            "    default_backend app",
            "",
            "backend app",
            "    balance roundrobin",
            "    option httpchk",
            f"    http-check send meth GET uri {config.health_path} ver HTTP/1.1 hdr Host {HOST}",
            "    http-check expect status 200",
            "    default-server check inter 2s fastinter 500ms downinter 1s fall 2 rise 2 maxconn 64",
            "    http-response set-header X-Served-By %[srv_name]",
            *servers,
            "",
            "frontend stats",
            f"    bind {HOST}:{config.ports.stats}",
            "    stats enable",
            "    stats uri /",
            "    stats refresh 5s",
            "",
        ]
    )


def backends_up(stats_csv: str) -> dict[str, str]:
    """Each app node's status (UP, DOWN, …) from HAProxy's statistics CSV (``/;csv``)."""
    rows = [line.split(",") for line in stats_csv.splitlines() if line and not line.startswith("#")]
    return {row[1]: row[17] for row in rows if row[0] == "app" and row[1] not in ("FRONTEND", "BACKEND")}
