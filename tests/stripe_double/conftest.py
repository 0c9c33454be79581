"""A running double, the real ``stripe`` library pointed at it, a webhook receiver and a form-driving browser.

No database: these tests talk HTTP on loopback ports only.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode, urlsplit

import pytest
import stripe

from stripe_double import API_VERSION, StripeDouble

START = 1_767_225_600  # 2026-01-01T00:00:00Z: the double's frozen clock in these tests
SECRET = "whsec_test_double"
API_KEY = "sk_test_double"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook endpoint: records every POST; answers the planned statuses first, then 200."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    planned: list[int] = field(default_factory=list)
    gate: threading.Event | None = None  # when set, each request waits for it before answering
    barrier: threading.Barrier | None = None  # when set, answers 200 only if all parties arrived together
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int = 500) -> None:
        self.planned.extend([status] * count)

    def answer(self, request: Received) -> int:
        if self.gate is not None:
            self.gate.wait(10)
        if self.barrier is not None:
            try:
                self.barrier.wait(5)
            except threading.BrokenBarrierError:
                return 409
        with self.lock:
            self.received.append(request)
            return self.planned.pop(0) if self.planned else 200

    def types(self) -> list[str]:
        return [request.event["type"] for request in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.answer(Received(dict(self.headers), body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/stripe/webhook/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def double(receiver: Receiver) -> Iterator[StripeDouble]:
    stub = StripeDouble(api_key=API_KEY, webhook_url=receiver.url, webhook_secret=SECRET, clock=START).start()
    yield stub
    stub.stop()


@pytest.fixture
def client(double: StripeDouble) -> stripe.StripeClient:
    return stripe.StripeClient(
        API_KEY, base_addresses={"api": double.url}, stripe_version=API_VERSION, max_network_retries=0
    )


@dataclass
class Catalog:
    pro: stripe.Price
    max: stripe.Price
    pack: stripe.Price


@pytest.fixture
def catalog(client: stripe.StripeClient) -> Catalog:
    pro = client.v1.products.create({"name": "Pro"})
    top_max = client.v1.products.create({"name": "Max"})
    pack = client.v1.products.create({"name": "50K credits"})
    monthly = {"interval": "month"}
    return Catalog(
        pro=client.v1.prices.create(
            {"product": pro.id, "unit_amount": 2900, "currency": "usd", "recurring": monthly, "nickname": "Pro"}
        ),
        max=client.v1.prices.create(
            {"product": top_max.id, "unit_amount": 9900, "currency": "usd", "recurring": monthly, "nickname": "Max"}
        ),
        pack=client.v1.prices.create({"product": pack.id, "unit_amount": 1000, "currency": "usd"}),
    )


@pytest.fixture
def customer(client: stripe.StripeClient) -> stripe.Customer:
    return client.v1.customers.create({"email": "owner@example.com", "name": "Owner"})


@dataclass
class Page:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


class Browser:
    """Drives the hosted pages over real HTTP, as a person's browser would, without following redirects."""

    def __init__(self, base: str) -> None:
        self.base = base

    def request(self, method: str, url: str, form: dict[str, str] | None = None) -> Page:
        parts = urlsplit(url if url.startswith("http") else self.base + url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        body = urlencode(form or {}) if method == "POST" else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return Page(response.status, dict(response.getheaders()), response.read().decode())
        finally:
            connection.close()

    def get(self, url: str) -> Page:
        return self.request("GET", url)

    def post(self, url: str, form: dict[str, str]) -> Page:
        return self.request("POST", url, form)


@pytest.fixture
def browser(double: StripeDouble) -> Browser:
    return Browser(double.url)


def event_types(double: StripeDouble, after: int = 0) -> list[str]:
    return [event["type"] for event in double.events[after:]]
