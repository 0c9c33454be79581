import json

import pytest
import redis

from api.credentials import api_key_create, credentials_forget, service_token_create
from api.ratelimit import rate_limit_reset
from tests.billing.test_views import team  # noqa: F401  (owner, admin and member of one workspace: the settings tests' fixture)
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def in_process_rate_limit(settings):
    """Count in-process unless a test says otherwise (CI's REDIS_URL is shared with other suites)."""
    settings.API_RATE_LIMIT_REDIS_URL = ""
    rate_limit_reset()
    credentials_forget()
    yield
    rate_limit_reset()
    credentials_forget()


@pytest.fixture
def credential_clock(monkeypatch):
    """The clock of the credentials a process keeps (api/credentials.py), moved by hand: [seconds]."""
    from api import credentials

    now = [1_000.0]
    monkeypatch.setattr(credentials, "clock", lambda: now[0])
    return now


REDIS_TEST_URL = "redis://127.0.0.1:6379/13"  # db 13 is this suite's alone


@pytest.fixture
def redis_db13(settings):
    """The rate limit (and the revocation counter) on a Redis database of the API suite's own."""
    connection = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        connection.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    connection.flushdb()
    settings.API_RATE_LIMIT_REDIS_URL = REDIS_TEST_URL
    yield connection
    connection.flushdb()


@pytest.fixture
def staff(db):
    return UserFactory(email="staff@example.test", is_staff=True, is_superuser=True)


@pytest.fixture
def service_token(db, staff):
    """The secret of a live service token."""
    _, secret = service_token_create(name="AI gateway", created_by=staff)
    return secret


@pytest.fixture
def api_key(workspace):
    """The secret of a live API key of ``workspace``."""
    _, secret = api_key_create(workspace=workspace, name="Our scripts", actor=None)
    return secret


class Api:
    """Calls /api/v1/ through Django's test client as a given credential."""

    def __init__(self, client, token: str | None, workspace: int | None = None):
        self.client, self.token, self.workspace = client, token, workspace

    def headers(self, extra: dict | None = None) -> dict:
        headers = {}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.workspace is not None:
            headers["Sigora-Workspace"] = str(self.workspace)
        return {**headers, **(extra or {})}

    def get(self, path: str, params: dict | None = None, headers: dict | None = None):
        return self.client.get(f"/api/v1/{path}", params or {}, headers=self.headers(headers))

    def post(self, path: str, body=None, headers: dict | None = None, raw: bytes | None = None):
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(
            f"/api/v1/{path}", data=data, content_type="application/json", headers=self.headers(headers)
        )


@pytest.fixture
def as_service(client, service_token, workspace):
    return Api(client, service_token, workspace.pk)


@pytest.fixture
def as_key(client, api_key):
    return Api(client, api_key)
