"""/healthz (the process answers) and /readyz (the database, the replica and Redis answer), against the real ones."""

from __future__ import annotations

import json
import secrets
import time

import pytest
import redis
from django.db import connections

from sigora.embedded_db import database_url
from tests.test_project import manage

REDIS_URL = "redis://127.0.0.1:6379/13"
BROKEN_REDIS_URL = "redis://:hunter2@127.0.0.1:1/0"  # nothing listens on port 1
# What must never be in an answer: the parts of the connection strings.
SECRETS = (b"hunter2", b"127.0.0.1", b":1", b"postgres")


@pytest.fixture
def redis_up():
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")


@pytest.mark.django_db  # for the page asked with the wrong host, at the end
def test_healthz_answers_without_the_database_the_session_or_the_host_check(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz", headers={"Host": "10.0.0.7"})  # a balancer asks by address
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-Type-Options"] == "nosniff"  # after the security middleware
    assert not {"Set-Cookie", "Vary", "X-Frame-Options"} & set(response.headers)  # before the rest
    assert client.get("/", headers={"Host": "10.0.0.7"}).status_code == 400  # pages still check it


@pytest.mark.django_db
def test_readyz_checks_the_database_and_redis(client, settings, redis_up):
    settings.REDIS_URL = REDIS_URL
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "redis": "ok"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_a_broken_redis_makes_readyz_503_at_once_while_healthz_stays_200(client, settings):
    settings.REDIS_URL = BROKEN_REDIS_URL
    started = time.monotonic()
    response = client.get("/readyz")
    took = time.monotonic() - started
    assert response.status_code == 503
    assert response.json() == {"database": "ok", "redis": "unavailable"}
    assert took < 1.0, f"readyz took {took:.2f} s"  # one try, no retries with backoff
    assert not any(secret in response.content for secret in SECRETS)
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db(databases=["default", "replica"])
def test_readyz_checks_the_replica_when_one_is_configured(client, settings):
    settings.REDIS_URL = ""  # this test is about the databases (CI sets REDIS_URL for the suite)
    assert client.get("/readyz").json() == {"database": "ok"}  # no replica configured
    settings.REPLICA_DATABASE = "replica"
    assert client.get("/readyz").json() == {"database": "ok", "replica": "ok"}

    replica = connections["replica"]
    working = replica.settings_dict
    replica.close()
    replica.settings_dict = {**working, "PORT": 1}  # a replica that is down
    try:
        response = client.get("/readyz")
    finally:
        replica.close()
        replica.settings_dict = working
    assert response.status_code == 503
    assert response.json() == {"database": "ok", "replica": "unavailable"}
    assert not any(secret in response.content for secret in SECRETS)


def test_only_get_and_head(client):
    for path in ("/healthz", "/readyz"):
        response = client.post(path)
        assert response.status_code == 405 and response["Allow"] == "GET, HEAD"


# In production settings, in a process of its own: HTTPS redirects everything but the two checks,
# and readyz says when the primary is down.
PROBE = """
import json
from django.test import Client
client = Client()
hosts = {"/healthz": "10.0.0.7", "/readyz": "10.0.0.7", "/": "billing.example.com"}  # a balancer asks by address
answers = {path: client.get(path, headers={"Host": host}) for path, host in hosts.items()}
print(json.dumps({path: [r.status_code, r.get("Location", ""), r.content.decode()] for path, r in answers.items()}))
"""


def probe_production(database_url: str) -> dict:
    result = manage(
        "shell",
        "-c",
        PROBE,
        env_overrides={
            "DJANGO_SETTINGS_MODULE": "sigora.settings.production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "billing.example.com",
            "BYOK_ENCRYPTION_KEYS": "tqTQXcPXdcgL6t6lFkG1n6FNOAeFl0GPyfP3O8r4gQk=",
            "DATABASE_URL": database_url,
            "REDIS_URL": "",
        },
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.django_db  # the test database exists: the probe's primary (DATABASE_URL's own may not, on a fresh machine)
def test_in_production_the_checks_answer_over_plain_http_and_readyz_names_a_primary_that_is_down():
    answers = probe_production(database_url(connections["default"].settings_dict))
    assert answers["/healthz"][:2] == [200, ""]
    assert answers["/"][0] == 301 and answers["/"][1].startswith("https://")
    assert answers["/readyz"] == [200, "", '{"database": "ok"}']

    down = probe_production("postgres://sigora:hunter2@127.0.0.1:1/sigora")
    assert down["/healthz"][:2] == [200, ""]
    status, location, body = down["/readyz"]
    assert (status, location, json.loads(body)) == (503, "", {"database": "unavailable"})
    assert not any(secret.decode() in body for secret in SECRETS)
