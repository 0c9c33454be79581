"""Staff create and revoke service tokens here; API keys and BYOK key reads are read-only lists.

A new token's secret is shown once, in a message after saving; only its prefix and hash
are stored. Credentials are revoked, never deleted, so the log of what they did keeps its
subject.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from api.credentials import api_key_revoke, service_token_create, service_token_revoke
from api.models import ApiKey, ByokKeyRead, ServiceToken


@admin.register(ServiceToken)
class ServiceTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    fields = ["name", "prefix", "created_at", "created_by", "last_used_at", "revoked_at", "revoked_by"]
    readonly_fields = ["prefix", "created_at", "created_by", "last_used_at", "revoked_at", "revoked_by"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ServiceToken | None = None) -> list[str]:
        return self.fields if obj is not None else ["name"]  # a new token is only named; the rest is made

    def save_model(self, request: HttpRequest, obj: ServiceToken, form, change: bool) -> None:
        if change:  # only the name can change
            obj.save(update_fields=["name"])
            return
        token, secret = service_token_create(name=obj.name, created_by=request.user)
        obj.pk, obj.prefix, obj.secret_hash, obj.created_at = (
            token.pk,
            token.prefix,
            token.secret_hash,
            token.created_at,
        )
        obj.created_by = request.user
        messages.warning(
            request,
            f"The service token for “{token.name}” is {secret} — copy it now: it is not shown again "
            "(only its prefix and a hash are kept).",
        )

    def has_delete_permission(self, request: HttpRequest, obj: ServiceToken | None = None) -> bool:
        return False  # revoke instead: the BYOK read log refers to tokens

    @admin.action(description="Revoke the selected service tokens (they stop at once)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ServiceToken]) -> None:
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            service_token_revoke(token=token, actor=request.user)
            revoked += 1
        self.message_user(request, f"{revoked} service token(s) revoked.", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "workspace", "created_at", "created_by", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a workspace's owners create its keys (Settings → API keys)

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("api.change_apikey")

    @admin.action(description="Revoke the selected API keys (they stop at once)", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True).select_related("workspace"):
            api_key_revoke(api_key=key, actor=request.user)
            revoked += 1
        self.message_user(request, f"{revoked} API key(s) revoked.", messages.SUCCESS)


@admin.register(ByokKeyRead)
class ByokKeyReadAdmin(admin.ModelAdmin):
    list_display = ["read_at", "workspace", "service_token", "key_hint"]
    list_select_related = ["workspace", "service_token"]
    search_fields = ["workspace__name", "service_token__name", "service_token__prefix"]
    date_hierarchy = "read_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ByokKeyRead | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ByokKeyRead | None = None) -> bool:
        return False
