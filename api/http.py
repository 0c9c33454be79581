"""The plumbing every API endpoint shares: the gate before ninja reads the request, and the errors.

An endpoint is a django-ninja operation declared with :func:`endpoint`, whose pydantic models
validate its body and query and are its OpenAPI document. Before ninja reads anything, the
gate checks, in this order:

1. another method is refused (405, JSON, with ``Allow``: :func:`method_not_allowed_json`);
2. the bearer token is authenticated (401 ``unauthenticated``, one message for every reason);
3. the workspace is resolved: the ``Sigora-Workspace`` header for a service token, the key's
   own for an API key (404 ``not_found``, the same whether or not it exists);
4. the request is counted against the credential's rate limit (429 ``rate_limited``);
5. a body over the endpoint's size limit is refused from its Content-Length, before it is
   read (413 ``payload_too_large``; a chunked body, which has none, 411 ``length_required``),
   then it is parsed (400 ``invalid_json``).

Then ninja validates the body and query against the endpoint's models (422 ``invalid_request``
naming the field), and any :class:`~billing.errors.BillingError` the view raises is rendered as
``{"code", "message", …details}`` with the error's status (and ``Retry-After`` when it carries
``resets_at``). Views get ``request.api`` (an :class:`ApiCall`) and return :func:`json_response`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.utils import timezone
from ninja import Router
from ninja.decorators import decorate_view
from ninja.errors import ValidationError
from ninja.parser import Parser

from api.credentials import Caller, credential_check, revocations_seen
from api.ratelimit import rate_limit_admit
from billing.bounds import BIGINT_MAX, id_parsed
from billing.credits import format_credits
from billing.db import DATABASE_ERRORS
from billing.errors import BillingError

logger = logging.getLogger("billing.api")

WORKSPACE_HEADER = "Sigora-Workspace"
WORKSPACE_META = "HTTP_SIGORA_WORKSPACE"
UNAUTHENTICATED_MESSAGE = "Missing or invalid credentials: send Authorization: Bearer <token> with a live token."
NOT_FOUND_MESSAGE = "No such workspace for this credential."
TOO_DEEP = "The body's JSON is nested too deeply."
# Error details that are amounts of credits (millicredits in BillingError.details).
AMOUNT_DETAILS = frozenset(
    {"required", "available", "reserved", "daily_cap", "spent_today", "budget", "spent_this_period"}
)
# A \u0000 escape that is not itself an escaped backslash's text. PostgreSQL stores no NUL in
# text or jsonb, so such a string could only fail further down; one scan of the raw bytes in C.
NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
ERROR_DESCRIPTIONS = {
    400: "The body is not JSON.",
    401: "No credential, or one that is unknown or revoked.",
    402: "Not enough credits.",
    403: "This credential may not do this, or (`email_unverified`) the workspace's owner has not verified "
    "their email yet.",
    404: "Not found (or not this credential's).",
    409: "Conflicts with an earlier request or the lead's state.",
    411: "The body came without a Content-Length (chunked): send its length.",
    413: "The body is too large.",
    422: "Invalid input: `field` names it.",
    429: "A limit was reached: wait `Retry-After` seconds.",
    503: "The database timed out (nothing was written) or could not be reached: retry after `Retry-After` "
    "seconds, with the same idempotency key.",
}
# The shared parts of the document that are not a body: the credential, the workspace header
# (checked by the gate with id_parsed, 1 to BIGINT_MAX) and Retry-After.
COMPONENTS = {
    "securitySchemes": {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "`Authorization: Bearer <token>`: a service token (`sgs_…`, created by staff in the admin) or a "
                "workspace API key (`sgk_…`, Settings → API keys)."
            ),
        }
    },
    "parameters": {
        "Workspace": {
            "name": WORKSPACE_HEADER,
            "in": "header",
            "required": False,
            "description": (
                "The workspace id to act on. Required with a service token; an API key acts on its own "
                "workspace and may name only that one."
            ),
            "schema": {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX},
        }
    },
    "headers": {
        "RetryAfter": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 1},
            "required": True,
        }
    },
}

logger = logging.getLogger("billing.api")


# --- Amounts and times -----------------------------------------------------------------------


def amount(milli: int) -> dict[str, Any]:
    """An amount as the API writes it: ``{"credits": "0.7", "millicredits": 700}`` (shape ``Amount``)."""
    return {"credits": format_credits(milli, grouped=False), "millicredits": milli}


def timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# --- Errors and responses --------------------------------------------------------------------


class ApiError(Exception):
    """A refusal the HTTP layer itself makes (auth, limits, parsing); rendered like a BillingError."""

    def __init__(self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, **details):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})
        self.details = details


# One encoder for every answer: json.dumps with options builds a new one per call.
_json_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_response(payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> HttpResponse:
    body = _json_encode(payload).encode()
    response = HttpResponse(body, content_type="application/json", status=status)
    response["Cache-Control"] = "no-store"
    # Known length: the server then sends the body as it is, not chunked (granian chunks an answer without it).
    response["Content-Length"] = str(len(body))
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error_json(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **details
) -> HttpResponse:
    return json_response({"code": code, "message": message, **details}, status=status, headers=headers)


def api_error_response(request: HttpRequest, error: ApiError) -> HttpResponse:
    return error_json(error.status, error.code, error.message, error.headers, **error.details)


def billing_error_response(request: HttpRequest, error: BillingError) -> HttpResponse:
    """A refusal from the services: its code, message and details (amounts as Amount objects)."""
    body = error.as_dict()
    for name in AMOUNT_DETAILS & body.keys():
        if isinstance(body[name], int):
            body[name] = amount(body[name])
    headers = {}
    resets_at = getattr(error, "resets_at", None)
    if isinstance(resets_at, datetime):  # a daily cap or the monthly budget: retry when it resets
        headers["Retry-After"] = str(max(1, math.ceil((resets_at - timezone.now()).total_seconds())))
    return json_response(body, status=error.http_status, headers=headers)


# PostgreSQL gave up on a statement: it ran past statement_timeout (57014, or an operator cancelled it) or
# waited on a lock past lock_timeout (55P03). Either way its transaction was rolled back.
TIMEOUT_SQLSTATES = {"57014", "55P03"}
DATABASE_TIMEOUT, DATABASE_UNAVAILABLE = "database_timeout", "database_unavailable"
DATABASE_MESSAGES = {
    DATABASE_TIMEOUT: "The database did not answer in time. Nothing was written: retry with the same idempotency key.",
    # The connection may have dropped after a commit was sent: the caller cannot know whether a charge
    # was written, and the same idempotency key on the retry answers the first result if it was.
    DATABASE_UNAVAILABLE: "The database is unavailable for a moment: retry with the same idempotency key.",
}


def database_error_response(request: HttpRequest, error: Exception) -> HttpResponse:
    """503 with ``Retry-After`` for a statement timed out, a lock waited on too long or a database that is
    down or restarting (PostgreSQL, or PgBouncer in front of it): the API's shape, never a 500 page.

    Django's errors from the ORM, psycopg's own from the charging path's raw cursor (billing/db.py).
    A timed-out statement's transaction is rolled back (the services write in ``transaction.atomic``);
    after a lost connection the caller cannot know, so either way it retries with the same key.
    Logged with the path and workspace.
    """
    sqlstate = getattr(error, "sqlstate", None) or getattr(error.__cause__, "sqlstate", None)
    code = DATABASE_TIMEOUT if sqlstate in TIMEOUT_SQLSTATES else DATABASE_UNAVAILABLE
    call = getattr(request, "api", None)
    logger.warning(
        "api: %s (%s) on %s %s, workspace %s: %s",
        code,
        sqlstate,
        request.method,
        request.path,
        getattr(call, "workspace_id", None),
        str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__,
    )
    return error_json(503, code, DATABASE_MESSAGES[code], {"Retry-After": "1"})


def validation_error_response(request: HttpRequest, error: ValidationError) -> HttpResponse:
    """The first thing the models refused: 422 ``invalid_request`` naming its field (``events[3].quantity``)."""
    first = error.errors[0]
    source, *where = first["loc"]
    if source == "body":
        where = where[1:]  # the view's parameter name: not part of the body the caller sent
    field = where_named(where) or "body"
    return error_json(422, "invalid_request", f"{field}: {first['msg']}.", field=field)


def where_named(loc: list[str | int]) -> str:
    """A pydantic error location as the caller wrote it: ``events[3].quantity``."""
    named = ""
    for part in loc:
        named += f"[{part}]" if isinstance(part, int) else (f".{part}" if named else str(part))
    return named


def too_deep_response(request: HttpRequest, error: RecursionError) -> HttpResponse:
    # Parsed just under the interpreter's limit, a body can still be too deep for the services to
    # encode again (metadata is stored as JSON).
    if request.method == "GET":
        raise error
    return error_json(400, "invalid_json", TOO_DEEP)


def method_not_allowed_json(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a route's view so another method is refused in JSON, like every other error."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            return error_json(405, "method_not_allowed", f"Use {allowed} here.", headers={"Allow": allowed})
        return response

    return wrapped


def error_response(status: int, codes: list[str], *, retry_after: bool = False) -> dict[str, Any]:
    """An answer whose body is the error shape with ``code`` one of ``codes``."""
    schema = {"allOf": [{"$ref": "#/components/schemas/Error"}, {"properties": {"code": {"enum": sorted(codes)}}}]}
    response: dict[str, Any] = {
        "description": ERROR_DESCRIPTIONS.get(status, "Refused."),
        "content": {"application/json": {"schema": schema}},
    }
    if retry_after:
        response["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    return response


# --- The request -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    caller: Caller
    workspace_id: int | None  # the workspace to act on (None for endpoints that need none)
    body: dict[str, Any] | None  # the parsed JSON object, for endpoints with a body


class BodyParser(Parser):
    """ninja's parser, given the body the gate already read, checked and parsed."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        return request.api.body


def _workspace_header(request: HttpRequest) -> int | None:
    raw = request.META.get(WORKSPACE_META)
    if raw is None:
        return None
    workspace_id = id_parsed(raw.strip())
    if workspace_id is None:
        raise ApiError(422, "invalid_request", f"{WORKSPACE_HEADER} must be a workspace id.", field=WORKSPACE_HEADER)
    return workspace_id


def _authenticate(request: HttpRequest, named: int | None) -> tuple[Caller, bool]:
    """The caller, and whether it was kept from an earlier request (api/credentials.py)."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    caller, kept = credential_check(token.strip(), workspace_id=named) if scheme.lower() == "bearer" else (None, False)
    if caller is None:
        raise ApiError(401, "unauthenticated", UNAUTHENTICATED_MESSAGE, headers={"WWW-Authenticate": "Bearer"})
    return caller, kept


def _body_read(request: HttpRequest, limit: int) -> tuple[bytes, dict[str, Any]]:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if length < 0 or length > limit:
        raise ApiError(413, "payload_too_large", f"The body must be at most {limit:,} bytes of JSON.", max_bytes=limit)
    if not length and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # The limit is checked from Content-Length before anything is read, so a body without one is not read:
        # say so, rather than answer for an empty body the caller did not send.
        raise ApiError(
            411, "length_required", "Send the body with a Content-Length header; chunked bodies are not read."
        )
    # Read the stream, not request.body: the limit is ours (the batch endpoint's is above
    # Django's DATA_UPLOAD_MAX_MEMORY_SIZE), and it was checked before reading.
    raw = request.read(length) if length else b""
    if not raw.strip():
        return raw, {}
    try:
        # Floats parse as floats: no amount is read from one (quantities must be integers and
        # amounts decimal strings), and metadata may carry them. NaN and Infinity are not JSON.
        parsed = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", TOO_DEEP) from None
    if not isinstance(parsed, dict):
        raise ApiError(422, "invalid_request", "The body must be a JSON object.", field="body")
    if NUL_ESCAPE.search(raw):
        raise ApiError(422, "invalid_request", "Text may not contain the NUL character (\\u0000).", field="body")
    return raw, parsed


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True)
class Gate:
    """What an endpoint checks before ninja reads its request (the module's steps 2 to 5)."""

    has_body: bool
    max_body: str  # the setting that limits the body
    workspace: bool
    service_only: bool

    def __call__(self, run: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        operation = run.__self__  # the ninja operation this gate guards
        query_names = frozenset(
            name
            for model in operation.models
            if model.__ninja_param_source__ == "query"
            for name in (getattr(model, "__ninja_flatten_map__", None) or model.model_fields)
        )
        takes_body = any(model.__ninja_param_source__ == "body" for model in operation.models)

        @functools.wraps(run)
        def gated(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                request.api = self.checked(request, query_names)
                if request.api.body and not takes_body:
                    raise ApiError(422, "invalid_request", "This operation takes no body.", field="body")
            except ApiError as error:
                return api_error_response(request, error)
            except DATABASE_ERRORS as error:  # the credential's lookup: outside ninja's own handlers
                return database_error_response(request, error)
            return run(request, *args, **kwargs)

        return gated

    def checked(self, request: HttpRequest, query_names: frozenset[str]) -> ApiCall:
        # A malformed header is reported after the credential is checked: 401 comes first.
        bad_header = named = None
        if self.workspace:
            try:
                named = _workspace_header(request)
            except ApiError as error:
                bad_header = error
        caller, kept = _authenticate(request, named)
        if bad_header is not None:
            raise bad_header
        if self.service_only and not caller.is_service:
            raise ApiError(403, "forbidden", "Only Sigora's service tokens may do this.")
        # Most calls carry no query string: skip building an empty QueryDict for them.
        for name, values in request.GET.lists() if request.META.get("QUERY_STRING") else ():
            if name not in query_names:  # a misspelt filter must not read as "no filter"
                raise ApiError(422, "invalid_request", f"Unknown query parameter {name!r}.", field=name)
            # PostgreSQL stores no NUL: refuse it here, not as a 500 below.
            if any("\x00" in value for value in values):
                raise ApiError(422, "invalid_request", f"{name} may not contain NUL characters.", field=name)
        wait, revocations = rate_limit_admit(caller.rate_key)
        # A credential was revoked somewhere since this one was kept: look it up again.
        if revocations is not None and revocations_seen(revocations) and kept:
            caller, _ = _authenticate(request, named)
        if wait is not None:
            raise ApiError(
                429,
                "rate_limited",
                f"Too many requests for this credential: try again in {wait} s.",
                headers={"Retry-After": str(wait)},
                retry_after=wait,
            )
        if self.workspace:
            if caller.is_service and named is None:
                raise ApiError(
                    422,
                    "invalid_request",
                    f"Name the workspace in the {WORKSPACE_HEADER} header.",
                    field=WORKSPACE_HEADER,
                )
            if not caller.workspace_found:
                raise ApiError(404, "not_found", NOT_FOUND_MESSAGE)
        body = None
        if self.has_body:
            raw, body = _body_read(request, getattr(settings, self.max_body))
            request._body = raw  # ninja reads request.body; the stream was read (within our limit) above
        return ApiCall(caller, caller.workspace_id if self.workspace else None, body)


# --- Declaring an endpoint ------------------------------------------------------------------


def endpoint(
    router: Router,
    method: str,
    path: str,
    *,
    operation_id: str,
    summary: str,
    description: str = "",
    tag: str,
    response: Mapping[int, tuple[Any, str]],
    errors: Mapping[int, list[str]] | None = None,
    retry_after: tuple[int, ...] = (),
    max_body: str = "API_MAX_BODY_BYTES",
    workspace: bool = True,
    service_only: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make ``view`` a ninja operation of ``router`` behind the gate, with its error answers documented.

    ``response``: the successes (status: (pydantic model, description)). ``errors``: the error codes the view's
    own refusals can answer, by status; the shared ones (401, 422 ``invalid_request``, 429
    ``rate_limited``, and 400/411/413 with a body, 404 for the workspace, 403 for service only) are
    added here. ``retry_after``: statuses among ``errors`` that carry Retry-After. ``max_body``
    names the setting that limits the body. ``workspace``: the view acts on a workspace
    (``request.api.workspace_id``). ``service_only``: API keys get 403.
    """
    method = method.upper()
    has_body = method in ("POST", "PUT", "PATCH")
    codes: dict[int, set[str]] = {status: set(names) for status, names in (errors or {}).items()}
    shared = [(401, "unauthenticated"), (422, "invalid_request"), (429, "rate_limited")]
    shared += [(503, DATABASE_TIMEOUT), (503, DATABASE_UNAVAILABLE)]
    shared += [(400, "invalid_json"), (411, "length_required"), (413, "payload_too_large")] if has_body else []
    shared += [(404, "not_found")] if workspace else []
    shared += [(403, "forbidden")] if service_only else []
    for status, code in shared:
        codes.setdefault(status, set()).add(code)
    extra: dict[str, Any] = {
        "responses": {
            **{status: {"description": description} for status, (_, description) in response.items()},
            **{
                status: error_response(status, list(names), retry_after=status in (429, 503) or status in retry_after)
                for status, names in sorted(codes.items())
            },
        }
    }
    if workspace:
        extra["parameters"] = [{"$ref": "#/components/parameters/Workspace"}]
    gate = Gate(has_body=has_body, max_body=max_body, workspace=workspace, service_only=service_only)

    def declare(view: Callable[..., Any]) -> Callable[..., Any]:
        return router.api_operation(
            [method],
            path,
            response={status: model for status, (model, _) in response.items()},
            operation_id=operation_id,
            summary=summary,
            description=description or None,
            tags=[tag],
            openapi_extra=extra,
        )(decorate_view(gate)(view))

    return declare
