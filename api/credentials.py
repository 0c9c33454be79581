"""Every write to API credentials, and the check every API request starts with.

Tokens are ``sgs_…`` (service tokens) or ``sgk_…`` (workspace API keys) followed by 43
url-safe random characters (256 bits). The first 12 characters are the public prefix:
shown in lists, unique, and the index the check looks the credential up by; the rest is
compared as a SHA-256 digest in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from api.models import ApiKey, ByokKeyRead, ServiceToken
from api.ratelimit import revocation_announce
from billing.bounds import column_length, id_parsed
from billing.db import execute_prepared
from billing.errors import InvalidRequest
from billing.models import Activity, Workspace
from billing.services import activity_record, byok_key

logger = logging.getLogger("billing.api")

SERVICE_TOKEN_KIND = "sgs"
API_KEY_KIND = "sgk"
PREFIX_LENGTH = 12  # "sgk_" and 8 random characters: 48 bits, unique by constraint
_TOKEN_SHAPE = re.compile(r"sg[sk]_[A-Za-z0-9_-]{43}")
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per credential
MAX_NAME_LENGTH = column_length(ApiKey, "name")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token(kind: str) -> str:
    return f"{kind}_{secrets.token_urlsafe(32)}"


def _name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"Give it a name of 1–{MAX_NAME_LENGTH} characters.", field="name")
    if not name.isprintable():
        raise InvalidRequest("A name cannot contain control characters (tabs, line breaks, NUL).", field="name")
    return name


def _create(model: type[ServiceToken] | type[ApiKey], kind: str, **fields) -> tuple:
    for _ in range(5):  # a prefix collision (48 random bits) is next to impossible; try again if it happens
        token = _new_token(kind)
        try:
            with transaction.atomic():
                credential = model.objects.create(prefix=token[:PREFIX_LENGTH], secret_hash=_digest(token), **fields)
        except IntegrityError:
            continue
        return credential, token
    raise RuntimeError("could not find a free credential prefix")


@transaction.atomic
def service_token_create(*, name: str, created_by: AbstractBaseUser | None) -> tuple[ServiceToken, str]:
    """A new service token and its secret, which is shown once and never stored."""
    token, secret = _create(ServiceToken, SERVICE_TOKEN_KIND, name=_name(name), created_by=created_by)
    logger.info("service token created prefix=%s by=%s", token.prefix, getattr(created_by, "pk", None))
    return token, secret


def service_token_revoke(*, token: ServiceToken, actor: AbstractBaseUser | None) -> ServiceToken:
    """Stop the token at once (see :func:`credential_check` for what "at once" takes)."""
    now = timezone.now()
    ServiceToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now, revoked_by=actor)
    _revoked()
    token.refresh_from_db(fields=["revoked_at", "revoked_by"])
    logger.info("service token revoked prefix=%s by=%s", token.prefix, getattr(actor, "pk", None))
    return token


@transaction.atomic
def api_key_create(*, workspace: Workspace, name: str, actor: AbstractBaseUser | None) -> tuple[ApiKey, str]:
    """A new key for the workspace's own tools and its secret, which is shown once and never stored."""
    key, secret = _create(ApiKey, API_KEY_KIND, workspace=workspace, name=_name(name), created_by=actor)
    activity_record(
        workspace=workspace, actor=actor, verb=Activity.Verb.API_KEY_CREATED, detail=f"{key.name} ({key.prefix}…)"
    )
    logger.info("api key created workspace=%s prefix=%s", workspace.pk, key.prefix)
    return key, secret


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: AbstractBaseUser | None) -> ApiKey:
    """Stop the key at once (see :func:`credential_check`); revoking it twice changes nothing."""
    changed = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=actor
    )
    api_key.refresh_from_db(fields=["revoked_at", "revoked_by"])
    _revoked()
    if changed:
        activity_record(
            workspace=api_key.workspace,
            actor=actor,
            verb=Activity.Verb.API_KEY_REVOKED,
            detail=f"{api_key.name} ({api_key.prefix}…)",
        )
        logger.info("api key revoked workspace=%s prefix=%s", api_key.workspace_id, api_key.prefix)
    return api_key


# --- The check every request makes ----------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who is calling: a service token or a workspace's API key, and the workspace it acts on."""

    kind: str  # SERVICE_TOKEN_KIND or API_KEY_KIND
    credential_id: int
    prefix: str
    workspace_id: int | None  # None: a service token that named no workspace
    workspace_found: bool  # False: the named workspace does not exist, or is not this key's

    @property
    def is_service(self) -> bool:
        return self.kind == SERVICE_TOKEN_KIND

    @property
    def rate_key(self) -> str:
        return f"{self.kind}:{self.credential_id}"


# One round trip each, written once: the credential by its prefix and, for a service token,
# whether the workspace it names exists (so resolving it costs no query of its own).
_SERVICE_SQL = (
    f"SELECT t.id, t.secret_hash, t.revoked_at IS NULL, t.last_used_at,"
    f" EXISTS (SELECT 1 FROM {Workspace._meta.db_table} w WHERE w.id = %s)"
    f" FROM {ServiceToken._meta.db_table} t WHERE t.prefix = %s"
)
_KEY_SQL = (
    f"SELECT k.id, k.secret_hash, k.revoked_at IS NULL, k.last_used_at, k.workspace_id"
    f" FROM {ApiKey._meta.db_table} k WHERE k.prefix = %s"
)
_TOUCH_SQL = "UPDATE {table} SET last_used_at = %s WHERE id = %s AND (last_used_at IS NULL OR last_used_at < %s)"


def _row(sql: str, params: list) -> tuple | None:
    """The one row a lookup by a credential's (unique) prefix finds, with the plan kept: every API call runs it."""
    found = execute_prepared(sql, params)
    return found[0] if found else None


def credential_authenticate(token: str, *, workspace_id: int | None, now: datetime | None = None) -> Caller | None:
    """The caller a bearer token stands for, or None (unknown, malformed or revoked: all alike).

    ``workspace_id`` is the workspace the request names, if any. A service token acts on it
    when it exists; an API key acts on its own workspace and on no other (naming another,
    existing or not, reads the same as naming one that does not exist).
    """
    if not _TOKEN_SHAPE.fullmatch(token):  # also keeps NULs and the like away from the database
        return None
    kind, prefix = token[:3], token[:PREFIX_LENGTH]
    if kind == SERVICE_TOKEN_KIND:
        row = _row(_SERVICE_SQL, [id_parsed(workspace_id) or 0, prefix])  # past bigint: names no workspace
    elif kind == API_KEY_KIND:
        row = _row(_KEY_SQL, [prefix])
    else:
        return None
    if row is None:
        return None
    credential_id, secret_hash, active, last_used_at, extra = row
    if not hmac.compare_digest(secret_hash, _digest(token)) or not active:
        return None
    now = now or timezone.now()
    if last_used_at is None or now - last_used_at >= LAST_USED_EVERY:
        table = (ServiceToken if kind == SERVICE_TOKEN_KIND else ApiKey)._meta.db_table
        execute_prepared(_TOUCH_SQL.format(table=table), [now, credential_id, now - LAST_USED_EVERY], rows=False)
    if kind == SERVICE_TOKEN_KIND:
        return Caller(kind, credential_id, prefix, workspace_id, workspace_found=workspace_id is not None and extra)
    own = extra
    return Caller(kind, credential_id, prefix, own, workspace_found=workspace_id is None or workspace_id == own)


def byok_key_read(*, caller: Caller, workspace: Workspace) -> str:
    """The workspace's decrypted Anthropic key for a service token, each read recorded ("" when none is set)."""
    if not caller.is_service:
        raise PermissionError("only service tokens read BYOK keys")
    ByokKeyRead.objects.create(
        workspace=workspace, service_token_id=caller.credential_id, key_hint=workspace.byok_key_hint
    )
    logger.info("byok key read over the API workspace=%s token=%s", workspace.pk, caller.prefix)
    return byok_key(workspace=workspace)


# --- Verified credentials, kept briefly --------------------------------------------------------
# Looking the credential up is a round trip to PostgreSQL before every call's own work: about a
# fifth of a single charge's time over HTTP (docs/performance.md). So each process keeps what it
# verified for API_CREDENTIAL_CACHE_SECONDS, and revoking reaches the kept copies three ways:
# - in the process that revokes, they are dropped at once (and again when its transaction commits);
# - every other process drops its own at its next request when the rate limit runs on Redis
#   (production): the rate-limit script reads a counter each revocation increments, in the call
#   every request makes anyway, so this costs no round trip;
# - without that Redis (or with the rate limit off), another process may still accept a revoked
#   credential for at most API_CREDENTIAL_CACHE_SECONDS.
# Only successes are kept, keyed by the token's digest alone: an unknown or revoked token is looked
# up every time, as before. A service token acts on whichever workspace a call names, so the
# workspaces a process has seen exist are kept apart from the credentials, for as long as the
# process lives: a workspace is never deleted once it has a wallet (Wallet.workspace is PROTECT,
# and every workspace gets one when it is opened), and should one ever be, charging refuses an
# unknown workspace itself. Keyed by (token, workspace) instead, a service token charging many
# workspaces was looked up again for nearly every call (bench/api.py's 50-workspace rows).

MAX_KEPT = 10_000
_kept: dict[str, tuple[Caller, float]] = {}
_workspaces_seen: set[int] = set()
_revocations: list[int | None] = [None]  # the counter as this process last read it
clock = time.monotonic  # tests move it


def credential_check(token: str, *, workspace_id: int | None) -> tuple[Caller | None, bool]:
    """:func:`credential_authenticate`'s answer, from this process's recent ones when it has it; and
    whether it came from them (the caller must then let :func:`revocations_seen` judge it)."""
    if not _TOKEN_SHAPE.fullmatch(token):
        return None, False
    digest = _digest(token)
    now = clock()
    kept = _kept.get(digest)
    if kept is not None and kept[1] > now:
        caller = _acting_on(kept[0], workspace_id)
        if caller is not None:
            return caller, True
    caller = credential_authenticate(token, workspace_id=workspace_id)
    seconds = settings.API_CREDENTIAL_CACHE_SECONDS
    if caller is not None and seconds > 0:
        if len(_kept) >= MAX_KEPT:
            _kept.clear()
        _kept[digest] = (caller, now + seconds)
        if caller.is_service and caller.workspace_found:
            if len(_workspaces_seen) >= MAX_KEPT:
                _workspaces_seen.clear()
            _workspaces_seen.add(caller.workspace_id)
    return caller, False


def _acting_on(caller: Caller, named: int | None) -> Caller | None:
    """A kept caller acting on the workspace this call names; None when only the database can tell
    (a service token naming a workspace this process has not seen)."""
    if not caller.is_service:  # an API key acts on its own workspace, and may name only that one
        found = named is None or named == caller.workspace_id
        return caller if found == caller.workspace_found else replace(caller, workspace_found=found)
    if named is None:  # a service token that names no workspace acts on none
        return caller if caller.workspace_id is None else replace(caller, workspace_id=None, workspace_found=False)
    if named not in _workspaces_seen:
        return None
    return caller if named == caller.workspace_id else replace(caller, workspace_id=named, workspace_found=True)


def revocations_seen(count: int) -> bool:
    """The revocation counter as the rate limit read it; True when it moved (everything kept is dropped)."""
    if _revocations[0] == count:
        return False
    _revocations[0] = count
    credentials_forget()
    return True


def credentials_forget() -> None:
    """Drop every credential this process keeps, and the workspaces it has seen (a revocation; tests)."""
    _kept.clear()
    _workspaces_seen.clear()


def _revoked() -> None:
    # Dropped now, for this process's next request, and again once the revocation is committed: a
    # request in between may have looked the credential up before the commit and kept it.
    credentials_forget()
    transaction.on_commit(_revocation_committed)


def _revocation_committed() -> None:
    credentials_forget()
    revocation_announce()
