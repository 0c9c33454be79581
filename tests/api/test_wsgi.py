"""The WSGI entry point gunicorn serves: one middleware stack, the tests' too; /api/v1/ is answered before
the pages' part of it (api.middleware.ApiFirstMiddleware)."""

from __future__ import annotations

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections

from billing.models import LedgerEntry
from tests.conftest import fund


def call(
    path: str, *, method: str = "GET", body: bytes = b"", headers: dict | None = None, per_request_cleanup: bool = False
):
    """One request through the WSGI application. ``per_request_cleanup``: with the handler's connection
    cleanup at the request's start and end, as gunicorn runs it (only for tests whose data is committed)."""
    from sigora.wsgi import application

    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "wsgi.input": io.BytesIO(body)}
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["CONTENT_TYPE"] = "application/json"
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(response_headers)

    if per_request_cleanup:
        response = application(environ, start_response)
        content = b"".join(response)
        response.close()  # what the server does after sending it: request_finished
        return answer["status"], answer["headers"], content
    # As Django's test client does: the handler's per-request connection cleanup would close the
    # connection holding the test's transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        content = b"".join(application(environ, start_response))
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return answer["status"], answer["headers"], content


def test_a_charge_through_gunicorns_entry_point_skips_the_pages_middleware(api_key, workspace):
    fund(workspace, topup=1_000)
    body = json.dumps({"action": "gmail-send", "idempotency_key": "wsgi-1"}).encode()
    status, headers, content = call(
        "/api/v1/charges", method="POST", body=body, headers={"Authorization": f"Bearer {api_key}"}
    )
    assert status == 201, content
    assert json.loads(content)["entry"]["idempotency_key"] == "wsgi-1"
    assert LedgerEntry.objects.filter(workspace=workspace, idempotency_key="wsgi-1").count() == 1
    assert headers["X-Content-Type-Options"] == "nosniff"  # the security middleware still runs
    # No session, CSRF, auth or clickjacking middleware: nothing of theirs in the answer.
    assert not {"Set-Cookie", "Vary", "X-Frame-Options"} & set(headers), headers
    status, _, content = call("/api/v1/balance")
    assert status == 401 and json.loads(content)["code"] == "unauthenticated"


def test_the_pages_keep_their_middleware(db):
    status, headers, _ = call("/settings/billing/")
    assert status == 302 and headers["Location"].startswith("/accounts/login/")
    assert headers["X-Frame-Options"] == "DENY"
    status, headers, _ = call("/api/v1/docs")  # a page for people, under /api/
    assert status == 200 and headers["X-Frame-Options"] == "DENY"
    status, headers, content = call("/accounts/login/")
    assert status == 200 and b"csrfmiddlewaretoken" in content and "csrftoken" in headers.get("Set-Cookie", "")


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/v1/balance", "GET"),
        ("/api/v1/charges", "POST"),
        ("/api/v1/charges", "GET"),
        ("/api/v1/nowhere", "GET"),
        ("/api/v1/docs", "GET"),
        ("/settings/billing/", "GET"),
    ],
)
def test_the_test_client_and_gunicorn_answer_through_the_same_stack(client, db, path, method):
    """What the tests see is what production serves: the same handler, the same middleware, the same headers."""
    from sigora.wsgi import application

    status, headers, content = call(path, method=method, body=b"{}" if method == "POST" else b"")
    response = client.generic(method, path, data=b"{}" if method == "POST" else b"", content_type="application/json")
    assert response.status_code == status, content
    varying = {"Date", "Set-Cookie"}  # the client keeps cookies apart; the time moves
    assert {k: v for k, v in response.headers.items() if k not in varying} == {
        k: v for k, v in headers.items() if k not in varying
    }
    assert type(application) is WSGIHandler  # Django's own, nothing dispatching in front of it
    if path in ("/api/v1/balance", "/api/v1/charges"):  # the pages' middleware never ran for the API
        assert not {"Vary", "X-Frame-Options"} & set(response.headers), response.headers
