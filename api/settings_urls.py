"""/settings/api-keys/ (the Settings page, beside billing's)."""

from django.urls import path

from api import pages

app_name = "api_keys"

urlpatterns = [
    path("", pages.settings_api_keys, name="settings_api_keys"),
    path("<int:key_id>/revoke/", pages.api_key_revoke_view, name="revoke"),
]
