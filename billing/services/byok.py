"""Bring your own Anthropic key: while one is stored, AI usage debits no credits."""

from __future__ import annotations

import logging
import re

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from billing import crypto
from billing.errors import InvalidRequest
from billing.models import Activity, Workspace
from billing.services.accounts import activity_record

logger = logging.getLogger(__name__)

# Anthropic API keys: "sk-ant-" then a version tag and a long url-safe secret.
ANTHROPIC_KEY_PATTERN = re.compile(r"^sk-ant-[A-Za-z0-9_-]{20,200}$")


def byok_key(*, workspace: Workspace) -> str:
    """The decrypted key, for Sigora's AI gateway only: every read is logged."""
    logger.info("byok key read workspace=%s", workspace.pk)
    return crypto.decrypt(workspace.byok_key_encrypted) if workspace.byok_key_encrypted else ""


def byok_set(*, workspace: Workspace, api_key: str, actor: AbstractBaseUser | None = None) -> Workspace:
    """Store (or replace) the workspace's Anthropic key, encrypted; only a masked hint stays readable."""
    api_key = (api_key or "").strip()
    if not ANTHROPIC_KEY_PATTERN.match(api_key):
        raise InvalidRequest(
            "That does not look like an Anthropic API key (it starts with 'sk-ant-' and has no spaces).",
            field="api_key",
        )
    workspace.byok_key_encrypted = crypto.encrypt(api_key)
    workspace.byok_key_hint = f"sk-ant-…{api_key[-4:]}"
    workspace.byok_set_at = timezone.now()
    workspace.save(update_fields=["byok_key_encrypted", "byok_key_hint", "byok_set_at"])
    activity_record(workspace=workspace, actor=actor, verb=Activity.Verb.BYOK_SET, detail=workspace.byok_key_hint)
    logger.info("byok key set workspace=%s", workspace.pk)
    return workspace


def byok_remove(*, workspace: Workspace, actor: AbstractBaseUser | None = None) -> Workspace:
    workspace.byok_key_encrypted = ""
    workspace.byok_key_hint = ""
    workspace.byok_set_at = None
    workspace.save(update_fields=["byok_key_encrypted", "byok_key_hint", "byok_set_at"])
    activity_record(workspace=workspace, actor=actor, verb=Activity.Verb.BYOK_REMOVED)
    logger.info("byok key removed workspace=%s", workspace.pk)
    return workspace


def byok_reencrypt_all() -> int:
    """Rewrite every stored key under the newest encryption key (after adding one in front)."""
    rewritten = 0
    for workspace in Workspace.objects.exclude(byok_key_encrypted="").only("pk", "byok_key_encrypted").iterator():
        token = crypto.reencrypt(workspace.byok_key_encrypted)
        Workspace.objects.filter(pk=workspace.pk, byok_key_encrypted=workspace.byok_key_encrypted).update(
            byok_key_encrypted=token
        )
        rewritten += 1
    logger.info("byok keys re-encrypted: %s", rewritten)
    return rewritten
