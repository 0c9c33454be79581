"""The served OpenAPI document against the served endpoints: schemathesis finds no 5xx and no
response that breaks the schema (status codes, content types, bodies, headers)."""

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from api.schema import openapi_document
from billing.services import record_reply
from sigora.wsgi import application
from tests.conftest import fund

pytestmark = pytest.mark.django_db

CHECKS = {
    # The request itself may be refused (422, 402…) whatever the schema allows: those are
    # business rules, not schema violations. What must hold is every response's conformance.
    "positive_data_acceptance": {"enabled": False},
    # And the other way round: a request the document calls invalid must be refused (4xx), never
    # accepted, so the document and the validation cannot drift apart unnoticed.
    "negative_data_rejection": {"enabled": True},
}
FUZZ_CONFIG = {"generation": {"max-examples": 25, "deterministic": True, "allow-x00": True}, "checks": CHECKS}
# Only schema-violating requests, and more of them: each operation's every field broken in turn.
INVALID_CONFIG = {
    "generation": {"mode": "negative", "max-examples": 60, "deterministic": True, "allow-x00": True},
    "checks": CHECKS,
}


# The served document, fetched from the WSGI app as a client would (the view reads no database).
# Loaded at import: schemathesis's lazy fixture loader does not run under this pytest.
schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json", application, config=SchemathesisConfig.from_dict(FUZZ_CONFIG)
)
invalid_schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json", application, config=SchemathesisConfig.from_dict(INVALID_CONFIG)
)


@pytest.fixture(autouse=True)
def connection_kept_across_requests(db):
    """The WSGI app runs in this thread, inside the test's transaction: keep Django from closing
    the connection at the end of each request, as its own test client does."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_workspace(workspace):
    fund(workspace, topup="1000")
    record_reply(workspace, "replied-lead")
    return workspace


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_endpoint_answers_as_its_schema_says_to_an_api_key(case, fuzz_workspace, api_key):
    case.call_and_validate(headers={"Authorization": f"Bearer {api_key}"})


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_endpoint_answers_as_its_schema_says_to_a_service_token(case, fuzz_workspace, service_token):
    headers = {"Authorization": f"Bearer {service_token}"}
    if "Sigora-Workspace" not in (case.headers or {}):  # name the funded workspace, unless the case tries another
        headers["Sigora-Workspace"] = str(fuzz_workspace.pk)
    case.call_and_validate(headers=headers)


@invalid_schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_endpoint_refuses_what_its_schema_calls_invalid(case, fuzz_workspace, service_token):
    headers = {"Authorization": f"Bearer {service_token}"}
    if "Sigora-Workspace" not in (case.headers or {}):
        headers["Sigora-Workspace"] = str(fuzz_workspace.pk)
    case.call_and_validate(headers=headers)


def test_the_document_is_openapi_3_1_and_lists_every_route(client):
    document = client.get("/api/v1/openapi.json").json()
    assert document == openapi_document()
    assert document["openapi"] == "3.1.0"
    schema.validate()  # against the OpenAPI 3.1 meta-schema (raises when it does not conform)
    assert set(document["paths"]) >= {
        "/charges", "/charges/batch", "/balance", "/transactions", "/catalog", "/replies", "/replies/resume",
        "/byok-key",
    }  # fmt: skip
    charges = document["paths"]["/charges"]["post"]["responses"]
    assert set(charges) == {"200", "201", "400", "401", "402", "403", "404", "409", "411", "413", "422", "429", "503"}
    for status, expected in (
        ("429", ["daily_cap_reached", "rate_limited"]),
        ("503", ["database_timeout", "database_unavailable"]),
    ):
        assert "Retry-After" in charges[status]["headers"]
        codes = charges[status]["content"]["application/json"]["schema"]["allOf"][1]["properties"]["code"]["enum"]
        assert codes == expected


def test_every_registered_operation_is_routed(client, api_key):
    """An operation in the document with no route would answer Django's HTML 404."""
    for path, methods in openapi_document()["paths"].items():
        for method in methods:
            url = "/api/v1" + path.replace("{", "").replace("}", "")
            response = client.generic(method.upper(), url, headers={"Authorization": "Bearer nope"})
            assert response.status_code == 401, (method, path)
