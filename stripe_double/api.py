"""One ``/v1`` request: authentication, idempotency keys, routing, Stripe-shaped answers."""

from __future__ import annotations

import base64
import hmac
import json
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import catalog, checkout, customers, invoices, payments, portal, refunds, subscriptions  # noqa: F401  (routes)
from .encoding import decode
from .errors import StripeError, unauthorized
from .routing import resolve, retrieve_and_list
from .store import API_VERSION, Obj, Store, expand_paths


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    events: list[Obj] = field(default_factory=list)


@dataclass(frozen=True)
class _Saved:
    fingerprint: tuple[object, ...]
    status: int
    body: bytes
    request_id: str


class Api:
    def __init__(self, store: Store, api_key: str) -> None:
        self.store = store
        self.api_key = api_key
        self._saved: dict[str, _Saved] = {}

    def authenticate(self, headers: Mapping[str, str]) -> StripeError | None:
        """Stripe's 401s: no key, or a key that is not ours (Bearer, or Basic with the key as user)."""
        given = _key(headers.get("Authorization", ""))
        if not given:
            return unauthorized(
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
            )
        if not hmac.compare_digest(given, self.api_key):
            return unauthorized(f"Invalid API Key provided: {given[:8]}{'*' * 4}{given[-4:]}")
        return None

    def handle(self, method: str, path: str, query: str, body: str, headers: Mapping[str, str]) -> Response:
        refusal = self.authenticate(headers)
        if refusal is not None:
            return _error(refusal, {"WWW-Authenticate": 'Bearer realm="Stripe"'})
        raw = body if method == "POST" else query
        key = headers.get("Idempotency-Key") if method == "POST" else None
        fingerprint = (method, path, tuple(sorted(raw.split("&"))))
        store = self.store
        with store.lock:
            request_id = store.new_id("req_", 14)
            answer = {"Request-Id": request_id, "Stripe-Version": headers.get("Stripe-Version") or API_VERSION}
            if key:
                answer["Idempotency-Key"] = key
                saved = self._saved.get(key)
                if saved is not None:
                    return self._replay(saved, fingerprint, key, answer)
            store.request = {"id": request_id, "idempotency_key": key}
            try:
                status, payload, keep = self._dispatch(method, path, raw)
            finally:
                store.request = {"id": None, "idempotency_key": None}
                events = store.take_outbox()
            encoded = json.dumps(payload, indent=2).encode()
            if key and keep:
                self._saved[key] = _Saved(fingerprint, status, encoded, request_id)
        return Response(status, encoded, answer, events)

    def _dispatch(self, method: str, path: str, raw: str) -> tuple[int, Obj, bool]:
        resolved = resolve(method, path)
        if resolved is None:
            message = f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs."
            return 404, StripeError(404, "invalid_request_error", message).body(), False
        handler, ids = resolved
        try:
            params = decode(raw)
            result = handler(self.store, params, *ids)
            return 200, self.store.present(result, expand_paths(params)), True
        except StripeError as error:
            return error.status, error.body(), error.saved
        except Exception:  # a fault of the double itself: answer as Stripe's 500 does, and say what broke
            traceback.print_exc(file=sys.stderr)
            return 500, {"error": {"type": "api_error", "message": "The offline Stripe double failed."}}, False

    def _replay(self, saved: _Saved, fingerprint: tuple[object, ...], key: str, answer: dict[str, str]) -> Response:
        if saved.fingerprint != fingerprint:
            error = StripeError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they were first used "
                f"with. Try using a key other than '{key}' if you meant to execute a different request.",
            )
            return _error(error, answer)
        return Response(
            saved.status, saved.body, {**answer, "Request-Id": saved.request_id, "Idempotent-Replayed": "true"}
        )


def _key(authorization: str) -> str:
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credentials).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


def _error(error: StripeError, headers: dict[str, str]) -> Response:
    return Response(error.status, json.dumps(error.body(), indent=2).encode(), headers)


retrieve_and_list("/v1/events", "event", "type")
