"""Who may call the HTTP API: Sigora's own services and a workspace's own tools.

Secrets are never stored: a credential keeps its public ``prefix`` (how people and the
lookup recognise it) and the SHA-256 of the whole token. Tokens are 256-bit random strings,
so a plain hash is as good as a slow one here (nothing to brute-force), and it keeps the
check cheap enough for the hot path. Revoking sets ``revoked_at``; nothing caches a
credential beyond one request, so a revoked one fails from the next request on.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from billing.models import Workspace


class Credential(models.Model):
    """What both kinds of credential share."""

    name = models.CharField(max_length=120, help_text="What it is for, e.g. “AI gateway (eu-1)”.")
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="The token's first characters.")
    secret_hash = models.CharField(max_length=64, editable=False, help_text="SHA-256 of the whole token, hex.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Written at most once a minute per credential (api.credentials), never on every request.
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )

    class Meta:
        abstract = True


class ServiceToken(Credential):
    """A token for one of Sigora's own services: acts on any workspace it names; reads BYOK keys."""

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(prefix__startswith="sgs_"), name="service_token_prefix")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ApiKey(Credential):
    """A workspace's key for its own tools: acts on that workspace only."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")

    class Meta:
        verbose_name = "API key"
        constraints = [models.CheckConstraint(condition=Q(prefix__startswith="sgk_"), name="api_key_prefix")]
        indexes = [models.Index(fields=["workspace", "-id"], name="api_key_ws_recent")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ByokKeyRead(models.Model):
    """One read of a workspace's decrypted BYOK key by a service token (the only way to read it over HTTP)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    service_token = models.ForeignKey(ServiceToken, on_delete=models.PROTECT, related_name="byok_reads")
    key_hint = models.CharField(max_length=16, blank=True, help_text="The masked key that was read; empty: none set.")
    read_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "BYOK key read"
        indexes = [models.Index(fields=["workspace", "-read_at"], name="byok_read_ws_recent")]

    def __str__(self) -> str:
        return f"{self.service_token} read the key of {self.workspace_id} at {self.read_at:%Y-%m-%d %H:%M:%S}"
