"""Body size (413) and the per-credential rate limit (429 rate_limited), in-process and through Redis."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings

from api.credentials import api_key_create
from billing.models import LedgerEntry
from tests.api.conftest import Api

pytestmark = pytest.mark.django_db


@override_settings(API_MAX_BODY_BYTES=1_000)
def test_a_body_over_the_limit_is_413_before_it_is_read(as_service, workspace):
    body = {"action": "gmail-send", "idempotency_key": "k", "metadata": {"note": "x" * 2_000}}
    response = as_service.post("charges", body)
    assert response.status_code == 413
    assert response.json() == {
        "code": "payload_too_large",
        "message": "The body must be at most 1,000 bytes of JSON.",
        "max_bytes": 1_000,
    }
    assert not LedgerEntry.objects.filter(idempotency_key="k").exists()


def test_413_is_decided_from_content_length_alone(as_service):
    """A client announcing more than the limit is refused without its body being read."""
    response = as_service.client.generic(
        "POST",
        "/api/v1/charges",
        data=b"{}",
        content_type="application/json",
        headers={**as_service.headers(), "Content-Length": str(10 * 1024 * 1024)},
    )
    assert response.status_code == 413


def test_the_batch_endpoint_takes_1000_events_with_their_metadata(as_service, settings):
    events = [
        {"action": "claude-haiku", "quantity": 10, "idempotency_key": f"ai-{n:04d}", "metadata": {"run": "r" * 3_000}}
        for n in range(1_000)
    ]
    size = len(json.dumps({"events": events}))
    assert settings.API_MAX_BODY_BYTES < size < settings.API_MAX_BATCH_BODY_BYTES
    response = as_service.post("charges/batch", {"events": events})
    assert response.status_code != 413
    too_big = as_service.post("charges", events[0] | {"metadata": {"run": "r" * 70_000}})
    assert too_big.status_code == 413


@override_settings(API_RATE_LIMIT=3, API_RATE_WINDOW_SECONDS=60)
def test_a_credential_over_its_rate_limit_gets_429_with_a_short_retry_after(client, workspace, api_key):
    api = Api(client, api_key)
    start = datetime(2027, 1, 1, 12, 0, 15, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        assert [api.get("balance").status_code for _ in range(3)] == [200, 200, 200]  # a full bucket at once
        refused = api.post("charges", {"action": "gmail-send", "idempotency_key": "k"})
        assert refused.status_code == 429
        # Three a minute is one every 20 s: the next fits 20 s on, not at the end of a window.
        assert refused["Retry-After"] == "20"
        assert refused.json()["code"] == "rate_limited"
        assert refused.json()["retry_after"] == 20
        assert not LedgerEntry.objects.filter(idempotency_key="k").exists()
        # Another credential has its own bucket.
        _, other = api_key_create(workspace=workspace, name="second", actor=None)
        assert Api(client, other).get("balance").status_code == 200
    with time_machine.travel(start + timedelta(seconds=19), tick=False):
        assert api.get("balance").status_code == 429
    with time_machine.travel(start + timedelta(seconds=20), tick=False):  # one more fits, and only one
        assert [api.get("balance").status_code for _ in range(2)] == [200, 429]
    with time_machine.travel(start + timedelta(seconds=200), tick=False):  # idle long enough: a full bucket again
        assert [api.get("balance").status_code for _ in range(4)] == [200, 200, 200, 429]


@override_settings(API_RATE_LIMIT=6_000, API_RATE_WINDOW_SECONDS=60)
def test_at_the_default_rate_a_refused_caller_waits_a_second_not_the_rest_of_a_minute(client, api_key):
    from api.ratelimit import rate_limit_admit

    start = datetime(2027, 1, 1, 12, 0, 1, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        assert all(rate_limit_admit("burst")[0] is None for _ in range(6_000))
        assert rate_limit_admit("burst")[0] == 1  # 10 ms to the next slot, rounded up to HTTP's whole second
    with time_machine.travel(start + timedelta(milliseconds=10), tick=False):
        assert rate_limit_admit("burst")[0] is None


@override_settings(API_RATE_LIMIT=2)
def test_unauthenticated_requests_are_401_not_counted_against_anyone(client, api_key):
    for _ in range(5):
        assert Api(client, "sgk_" + "z" * 43).get("balance").status_code == 401
    assert Api(client, api_key).get("balance").status_code == 200


@override_settings(API_RATE_LIMIT=2, API_RATE_WINDOW_SECONDS=10)
def test_through_redis_the_bucket_is_shared_and_expires(client, api_key, redis_db13):
    from api.ratelimit import rate_limit_reset

    api = Api(client, api_key)
    start = datetime(2027, 1, 1, 12, 0, 3, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        assert api.get("balance").status_code == 200
        rate_limit_reset()  # the in-process buckets play no part: a second process would see the same
        assert api.get("balance").status_code == 200
        refused = api.get("balance")
        assert (refused.status_code, refused["Retry-After"]) == (429, "5")  # two per 10 s: one every 5 s
    keys = redis_db13.keys("sigora:api:gcra:*")
    assert len(keys) == 1
    micros = int(start.timestamp()) * 1_000_000
    assert int(float(redis_db13.get(keys[0]))) == micros + 2 * 5_000_000  # two accepted, the refusal not counted
    assert 0 < redis_db13.pttl(keys[0]) <= 11_000  # gone once the bucket is full again
    with time_machine.travel(start + timedelta(seconds=5), tick=False):
        assert [api.get("balance").status_code for _ in range(2)] == [200, 429]


@override_settings(API_RATE_LIMIT=1, API_RATE_LIMIT_REDIS_URL="redis://127.0.0.1:1/13")
def test_an_unreachable_redis_lets_requests_through(client, api_key):
    api = Api(client, api_key)
    assert [api.get("balance").status_code for _ in range(3)] == [200, 200, 200]
