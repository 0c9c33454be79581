"""Signed webhook delivery from a background worker, with retries on the double's clock.

Each body is signed as Stripe signs it: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``.
The timestamp is wall-clock time even when the double's clock has been moved, because receivers
(``stripe.Webhook.construct_event``) check it against their own clock with a 300 s tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import urlsplit

from .store import Obj, Store

TIMEOUT = 10  # seconds a receiver has to answer one attempt


class Delivery(NamedTuple):
    event_id: str
    event_type: str
    result: int | str  # the HTTP status, or the connection error's text
    attempt: int


@dataclass(order=True)
class _Pending:
    due: int
    seq: int
    event: Obj = field(compare=False)
    url: str = field(compare=False)  # the endpoint it is for: a changed webhook_url drops it, as Stripe would
    attempt: int = field(compare=False, default=1)


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookSender:
    def __init__(
        self, store: Store, *, secret: str, retry_delays: tuple[int, ...], url: Callable[[], str | None]
    ) -> None:
        self.store = store
        self.secret = secret
        self.retry_delays = tuple(retry_delays)
        self.url = url
        self.deliveries: list[Delivery] = []
        self._queue: list[_Pending] = []
        self._cond = threading.Condition()
        self._seq = 0
        self._expected = 0  # outboxes taken by a request that has not enqueued them yet
        self._in_flight = 0
        self._held = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="stripe-double-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT + 1)

    # --- queueing -------------------------------------------------------------------------------

    def expect(self) -> None:
        """Say events are on their way (taken under the store lock, enqueued once the caller is answered)."""
        with self._cond:
            self._expected += 1

    def enqueue(self, events: list[Obj], *, expected: bool = False) -> None:
        with self._cond:
            if expected:
                self._expected -= 1
            url = self.url()
            if url:
                now = self.store.now()
                for event in events:
                    self._push(_Pending(now, 0, event, url))
            self._cond.notify_all()

    def _push(self, item: _Pending) -> None:
        self._seq += 1
        item.seq = self._seq
        self._queue.append(item)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def hold(self) -> None:
        with self._cond:
            self._held = True

    def release(self, order: str = "as_is") -> None:
        """Let held deliveries go, in the order they were made (``as_is``) or newest first (``reverse``)."""
        if order not in ("as_is", "reverse"):
            raise ValueError("order must be 'as_is' or 'reverse'")
        with self._cond:
            if order == "reverse":
                now = self.store.now()
                due = sorted(item for item in self._queue if item.due <= now)
                for item in due:
                    item.due = now
                for item, seq in zip(due, reversed([item.seq for item in due]), strict=True):
                    item.seq = seq
            self._held = False
            self._cond.notify_all()

    def force_due(self) -> None:
        """Make every scheduled retry due now, whatever the clock says."""
        with self._cond:
            now = self.store.now()
            for item in self._queue:
                item.due = min(item.due, now)
            self._cond.notify_all()

    def wait(self, timeout: float = 10.0) -> None:
        """Block until nothing is due or under way (held deliveries and future retries do not count)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._expected or self._in_flight or self._next_due(take=False):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("webhook deliveries still under way")
                self._cond.wait(min(remaining, 0.05))

    def scheduled(self) -> list[tuple[str, int, int]]:
        """(event id, attempt, due time) of every delivery still waiting."""
        with self._cond:
            return [(item.event["id"], item.attempt, item.due) for item in sorted(self._queue)]

    # --- the worker -----------------------------------------------------------------------------

    def _next_due(self, *, take: bool = True) -> _Pending | None:
        if self._held:
            return None
        now = self.store.now()
        due = [item for item in self._queue if item.due <= now]
        if not due:
            return None
        chosen = min(due)
        if take:
            self._queue.remove(chosen)
        return chosen

    def _run(self) -> None:
        while True:
            with self._cond:
                item = self._next_due()
                while item is None:
                    if self._stopping:
                        return
                    self._cond.wait(0.25)  # the clock may reach a retry on its own
                    item = self._next_due()
                self._in_flight += 1
            try:
                self._attempt(item)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _attempt(self, item: _Pending) -> None:
        if item.url != self.url():
            return  # the endpoint it was for is gone
        result = self.send(item.event, item.attempt, item.url)
        if _succeeded(result):
            with self.store.lock:
                item.event["pending_webhooks"] = 0
        elif item.attempt <= len(self.retry_delays):
            due = self.store.now() + self.retry_delays[item.attempt - 1]
            with self._cond:
                self._push(_Pending(due, 0, item.event, item.url, item.attempt + 1))

    def send(self, event: Obj, attempt: int, url: str) -> int | str:
        """POST one signed copy of ``event`` to ``url``; records and returns the status (or the error's text)."""
        with self.store.lock:
            payload = json.dumps(self.store.render(event), indent=2)
        result = _post(url, payload, sign(payload, self.secret))
        with self._cond:
            self.deliveries.append(Delivery(event["id"], event["type"], result, attempt))
        return result

    def redeliver(self, event: Obj, *, times: int, concurrently: bool) -> list[int | str]:
        """Send ``event`` again ``times`` times, one after another or all at once from threads."""
        url = self.url()
        if not url:
            raise ValueError("no webhook_url to deliver to")
        with self._cond:
            first = 1 + sum(1 for delivery in self.deliveries if delivery.event_id == event["id"])
        attempts = range(first, first + times)
        if not concurrently:
            return [self.send(event, attempt, url) for attempt in attempts]
        results: dict[int, int | str] = {}
        start = threading.Barrier(times)

        def one(attempt: int) -> None:
            start.wait()
            results[attempt] = self.send(event, attempt, url)

        threads = [threading.Thread(target=one, args=(attempt,), daemon=True) for attempt in attempts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT + 1)
        return [results.get(attempt, "timed out") for attempt in attempts]


def _succeeded(result: int | str) -> bool:
    return isinstance(result, int) and 200 <= result < 300


def _post(url: str, payload: str, signature: str) -> int | str:
    parts = urlsplit(url)
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": signature,
    }
    connection = connection_type(parts.hostname or "127.0.0.1", parts.port, timeout=TIMEOUT)
    try:
        connection.request("POST", path, body=payload.encode(), headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
