"""The fault test's clients: processes charging through the balancer as Sigora's services do, retrying as they must.

Each client is a process of its own (``multiprocessing``, spawned) with a service token of its own (the
rate limit counts per credential), charging single events and batches on workspaces picked at random
from a shared few (so wallets are contended). Every call carries its idempotency key, and is sent again
with the same key and the same body on a timeout, a connection error or a 5xx (with back-off), and on a
429 ``rate_limited`` after its ``Retry-After``; now and then the client hangs up right after sending,
before the answer, and sends it again. A key ends with the first other answer (2xx, or a refusal that
retrying cannot change), or failed once its attempts ran out.

Every key is written, with each attempt's outcome and time and every 2xx answer's entry ids, as one
JSON line in the client's own file; ``stack/faults.py`` joins them with the ledger.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import random
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ACTION = "claude-haiku"  # 100 millicredits a token (the catalog's seed): each entry's amount is known
MILLI_PER_TOKEN = 100
REQUEST_TIMEOUT = 10.0  # seconds; longer than a healthy charge ever takes, shorter than HAProxy's 60 s
MAX_ATTEMPTS = 12
BACKOFF_MAX = 2.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ClientPlan:
    number: int
    url: str  # the balancer
    token: str
    workspaces: tuple[int, ...]
    out: Path
    seed: int
    batch_share: float = 0.3
    hangup_share: float = 0.04


def _headers(token: str, workspace: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Sigora-Workspace": str(workspace), "Content-Type": "application/json"}


def post(url: str, path: str, headers: dict[str, str], body: bytes, *, hang_up: bool = False) -> tuple[str, Any]:
    """One attempt on a fresh connection: ("201", payload), ("timeout"|"conn"|"hangup", None), ("5xx…", text).

    A fresh connection each time: a kept-alive one the balancer closed meanwhile would turn a healthy
    answer into a connection error on our side, which is not what is being measured.
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request("POST", path, body=body, headers=headers)
        if hang_up:
            time.sleep(random.uniform(0, 0.02))  # sometimes before the node answered, sometimes after
            connection.sock.shutdown(socket.SHUT_RDWR)
            return "hangup", None
        answer = connection.getresponse()
        raw = answer.read()
        retry_after = answer.getheader("Retry-After")
    except TimeoutError:
        return "timeout", None
    except (OSError, http.client.HTTPException):
        return "conn", None
    finally:
        connection.close()
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = raw[:200].decode(errors="replace")  # a proxy's or a server's HTML error page
    if answer.status == 429 and isinstance(payload, dict) and payload.get("code") == "rate_limited":
        payload["retry_after"] = int(retry_after or 1)
    return str(answer.status), payload


def entry_ids(path: str, payload: dict[str, Any]) -> list[int]:
    if path.endswith("/batch"):
        return [entry["id"] for entry in payload["entries"]]
    return [payload["entry"]["id"]]


def retryable(outcome: str, payload: Any) -> bool:
    if outcome in ("timeout", "conn", "hangup") or outcome.startswith("5"):
        return True
    return outcome == "429" and isinstance(payload, dict) and payload.get("code") == "rate_limited"


def call(url: str, path: str, headers: dict[str, str], body: bytes, rng: random.Random, hangup_share: float) -> dict:
    """Send one key until it resolves or its attempts run out; what happened, for the record."""
    attempts: list[list] = []
    answers: list[list[int]] = []
    final: str | None = None
    for number in range(MAX_ATTEMPTS):
        hang_up = number < MAX_ATTEMPTS - 2 and rng.random() < hangup_share
        began = time.time()
        outcome, payload = post(url, path, headers, body, hang_up=hang_up)
        attempts.append([round(began, 3), outcome])
        if outcome.startswith("2"):
            answers.append(entry_ids(path, payload))
            final = outcome
            break
        if not retryable(outcome, payload):
            final = outcome
            attempts[-1].append(payload.get("code") if isinstance(payload, dict) else str(payload)[:80])
            break
        if outcome == "hangup":
            continue  # at once: the caller gave up waiting, and asks again
        wait = payload["retry_after"] if outcome == "429" else min(BACKOFF_MAX, 0.1 * 2**number)
        time.sleep(wait * rng.uniform(0.5, 1.0))
    return {"attempts": attempts, "answers": answers, "final": final}


def client_run(plan: ClientPlan, stop: Any, ready: Any) -> None:
    """Charge until ``stop`` is set, finishing the key under way; one JSON line per key in ``plan.out``.

    ``ready`` is released once, after the first key's answer: the faults wait for every client.
    """
    # Forked from the fault runner: its signal handlers are not ours, and should it die, so do we.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    rng = random.Random(plan.seed)
    with open(plan.out, "w") as out:
        made = 0
        while not stop.is_set():
            made += 1
            workspace = rng.choice(plan.workspaces)
            key = f"c{plan.number:02d}-{made}"
            if rng.random() < plan.batch_share:
                events = [
                    {"action": ACTION, "quantity": rng.randint(1, 50), "idempotency_key": f"{key}.{n}"}
                    for n in range(rng.randint(2, 10))
                ]
                path, body = "/api/v1/charges/batch", {"events": events}
            else:
                events = [{"action": ACTION, "quantity": rng.randint(1, 50), "idempotency_key": key}]
                path, body = "/api/v1/charges", events[0]
            headers = _headers(plan.token, workspace)
            record = call(plan.url, path, headers, json.dumps(body).encode(), rng, plan.hangup_share)
            record.update(workspace=workspace, path=path, keys=[e["idempotency_key"] for e in events])
            record["quantities"] = [e["quantity"] for e in events]
            out.write(json.dumps(record) + "\n")
            out.flush()
            if made == 1:
                ready.release()


def retry_once(url: str, token: str, record: dict) -> tuple[str, Any]:
    """The final retry of a key whose every attempt failed: the same body, once."""
    path, keys, quantities = record["path"], record["keys"], record["quantities"]
    events = [{"action": ACTION, "quantity": q, "idempotency_key": k} for k, q in zip(keys, quantities, strict=True)]
    body = {"events": events} if path.endswith("/batch") else events[0]
    outcome, payload = post(url, path, _headers(token, record["workspace"]), json.dumps(body).encode())
    return outcome, entry_ids(path, payload) if outcome.startswith("2") else payload
