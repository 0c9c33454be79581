"""Start processes in order, each once it is ready; restart any that dies; stop them all in reverse.

Each process runs in a session of its own, so a Ctrl-C at the terminal reaches only the
supervisor, which then stops the processes one by one in reverse order (the balancer before the
app nodes, the app nodes before PgBouncer, the replica before the primary), each with its own
stop signal, then SIGKILL if it is still there after its timeout, then its whole process group.
Should the supervisor itself be killed with SIGKILL, every child gets its stop signal from the
kernel (PR_SET_PDEATHSIG), so nothing is left running then either.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1
RESTART_BACKOFF_MAX = 30.0  # seconds; doubling from 1 s for a process that keeps dying
HEALTHY_AFTER = 60.0  # seconds alive after which a process's next death starts the back-off afresh


class Stopping(Exception):
    """A stop signal arrived while starting: stop what was started, then exit."""


class StepFailed(Exception):
    """A step of starting failed: its message says which and where its log is."""


@dataclass
class Service:
    name: str
    argv: list[str]
    env: Mapping[str, str] | None = None
    ready: Callable[[], bool] | None = None  # polled after each start until true
    ready_timeout: float = 60.0
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 30.0
    user: str | None = None  # run as this system user (PostgreSQL and PgBouncer refuse root)
    cwd: Path | None = None


@dataclass
class _Running:
    service: Service
    process: subprocess.Popen
    started: float
    deaths: int = 0


def _die_with_parent(signum: int) -> Callable[[], None]:
    def arm() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)

    return arm


@dataclass
class Supervisor:
    logs: Path
    say: Callable[[str], None] = print
    running: dict[str, _Running] = field(default_factory=dict)
    stopping: bool = False

    # --- Signals ---------------------------------------------------------------------------------

    def handle_signals(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        if not self.stopping:
            self.say(f"stack: {signal.Signals(signum).name} received, stopping")
        self.stopping = True

    def pause(self, seconds: float) -> None:
        """Sleep a little, unless a stop was asked for (then raise Stopping)."""
        if self.stopping:
            raise Stopping
        time.sleep(seconds)
        if self.stopping:
            raise Stopping

    # --- Starting ----------------------------------------------------------------------------------

    def _spawn(self, service: Service) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{service.name}.log", "ab") as log:
            return subprocess.Popen(
                service.argv,
                env=dict(service.env) if service.env is not None else None,
                cwd=service.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=service.user,
                group=service.user,
                extra_groups=[] if service.user else None,
                preexec_fn=_die_with_parent(service.stop_signal),
            )

    def start(self, service: Service) -> None:
        """Start ``service`` and wait until it is ready; a process that exits or never gets ready fails the start."""
        began = time.monotonic()
        process = self._spawn(service)
        self.running[service.name] = _Running(service, process, began)
        self._wait_ready(service, process)
        self.say(f"  {service.name:<10} pid {process.pid:<7} ready in {time.monotonic() - began:.1f} s")

    def _wait_ready(self, service: Service, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + service.ready_timeout
        while service.ready is not None and not service.ready():
            if process.poll() is not None:
                raise StepFailed(f"{service.name} exited with {process.returncode}: {self.log_tail(service.name)}")
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"{service.name} not ready in {service.ready_timeout:.0f} s: {self.log_tail(service.name)}"
                )
            self.pause(0.2)

    def run_step(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        timeout: float = 300.0,
    ) -> None:
        """Run a one-shot command (initdb, a base backup, migrate) to its end, its output in its log."""
        began = time.monotonic()
        step = Service(name, argv, env=env, user=user, stop_signal=signal.SIGTERM)
        process = self._spawn(step)
        try:
            while process.poll() is None:
                if time.monotonic() - began > timeout:
                    raise StepFailed(f"{name} took over {timeout:.0f} s: {self.log_tail(name)}")
                self.pause(0.1)
        finally:
            if process.poll() is None:
                self._stop_process(step, process)
        if process.returncode:
            raise StepFailed(f"{name} failed ({process.returncode}): {self.log_tail(name)}")
        self.say(f"  {name:<10} done in {time.monotonic() - began:.1f} s")

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        return f"see {path}\n" + "\n".join(f"    {line}" for line in text)

    # --- Running: a process that dies is started again --------------------------------------------

    def watch(self, every: float = 0.5) -> None:
        """Until a stop signal: restart any process that exited, after a back-off if it keeps dying."""
        while not self.stopping:
            for running in list(self.running.values()):
                if running.process.poll() is not None:
                    self._restart(running)
            time.sleep(every)

    def _restart(self, running: _Running) -> None:
        service, old = running.service, running.process
        lived = time.monotonic() - running.started
        running.deaths = 1 if lived > HEALTHY_AFTER else running.deaths + 1
        delay = min(RESTART_BACKOFF_MAX, 2.0 ** (running.deaths - 1))
        self.say(
            f"stack: {service.name} (pid {old.pid}) exited with {old.returncode}; starting it again in {delay:.0f} s"
        )
        _signal_group(old.pid, signal.SIGKILL)  # what it left (a killed master's workers) must not hold its port
        try:
            self.pause(delay)
            running.started = time.monotonic()
            running.process = self._spawn(service)
            self._wait_ready(service, running.process)
            self.say(f"stack: {service.name} is back (pid {running.process.pid})")
        except StepFailed as failed:
            self.say(f"stack: {failed}")  # the next turn of watch() sees it dead and tries again, later
        except Stopping:
            pass

    # --- Stopping ------------------------------------------------------------------------------------

    def stop_all(self) -> None:
        """Stop every process, last started first; each gets its stop signal, then SIGKILL after its timeout."""
        for running in reversed(list(self.running.values())):
            began = time.monotonic()
            code = self._stop_process(running.service, running.process)
            self.say(f"  {running.service.name:<10} stopped ({code}) in {time.monotonic() - began:.1f} s")
        self.running.clear()

    def _stop_process(self, service: Service, process: subprocess.Popen) -> int:
        if process.poll() is None:
            process.send_signal(service.stop_signal)
            try:
                process.wait(timeout=service.stop_timeout)
            except subprocess.TimeoutExpired:
                self.say(f"stack: {service.name} still running after {service.stop_timeout:.0f} s: SIGKILL")
                process.kill()
                process.wait()
        _signal_group(process.pid, signal.SIGKILL)  # anything of its group still there (it was the leader)
        return process.returncode


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pgid, signum)
