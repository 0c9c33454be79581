"""The HTTP side: ``/v1`` API, ``/_double`` control surface, hosted pages, on one threading server."""

from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import hosted
from .api import Response
from .encoding import decode

if TYPE_CHECKING:
    from . import StripeDouble


class DoubleServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], double: StripeDouble) -> None:
        super().__init__(address, Handler)
        self.double = double


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DoubleServer
    server_version = "stripe-double"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle and delayed ACKs cost 40 ms a call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        double = self.server.double
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        if url.path.startswith("/v1/"):
            response = double.api.handle(method, url.path, url.query, body, self.headers)
        elif url.path.startswith("/_double/"):
            response = self._control(method, url.path.removeprefix("/_double/"), url.query, body)
        else:
            response = hosted.handle(double.store, method, url.path, url.query, body)
        if not response.events:
            self._write(response)
            return
        double.sender.expect()  # before answering, so wait_for_deliveries() cannot miss them
        try:
            self._write(response)
        finally:  # even if the caller hung up: the events happened
            double.sender.enqueue(response.events, expected=True)

    def _control(self, method: str, name: str, query: str, body: str) -> Response:
        double = self.server.double
        refusal = double.api.authenticate(self.headers)
        if refusal is not None:
            return _json(refusal.status, refusal.body())
        if self.headers.get("Content-Type", "").startswith("application/json") and body:
            arguments: Any = json.loads(body)
        else:
            arguments = decode(body if method == "POST" else query)
        status, payload = double.control(method, name, arguments)
        return _json(status, payload)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        headers = {"Content-Type": "application/json", **response.headers, "Content-Length": str(len(response.body))}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.double.verbose:
            super().log_message(format, *args)


def _json(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload, indent=2).encode())
