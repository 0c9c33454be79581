"""Settings → API keys, the admin for service tokens, and the browsable docs."""

import json
import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from api.credentials import api_key_create
from api.models import ApiKey, ServiceToken
from tests.api.conftest import Api
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db

PAGE = "/settings/api-keys/"


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_create_a_key_shown_once_then_listed_by_prefix(client, team, role):
    client.force_login(team[role])
    response = client.post(PAGE, {"name": "Zapier"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = re.search(r'data-testid="secret">(sgk_[A-Za-z0-9_-]{43})<', response.content.decode()).group(1)
    key = ApiKey.objects.get(workspace=team["ws"])
    assert (key.name, key.prefix, key.created_by) == ("Zapier", secret[:12], team[role])
    # It works at once, on this workspace.
    assert Api(client, secret).get("balance").json()["workspace"] == team["ws"].pk
    # Shown once: the list has the prefix, never the secret.
    listed = client.get(PAGE).content.decode()
    assert f"{key.prefix}…" in listed
    assert secret not in listed
    assert "Zapier" in listed


def test_with_htmx_the_new_key_comes_in_a_box_of_its_own_in_place_and_no_answer_is_kept(client, team):
    """The form posts through htmx: the answer is the keys' region alone (the address stays the GET's),
    with the secret in a box holding a Copy button and the warning; no response of the page is cached."""
    client.force_login(team["owner"])
    page = client.get(PAGE)
    assert "no-store" in page["Cache-Control"]  # the page a secret is swapped into is never kept either
    form = re.search(r'<form method="post" action="/settings/api-keys/"[^>]*>', page.content.decode()).group(0)
    assert 'hx-post="/settings/api-keys/"' in form and 'hx-target="#api-keys"' in form

    response = client.post(PAGE, {"name": "Zapier"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    assert "<html" not in html and html.lstrip().startswith('<div id="api-keys" class="region">')
    box = re.search(r'<section class="card new-key".*?</section>', html, re.S).group(0)
    secret = re.search(r'data-testid="secret">(sgk_[A-Za-z0-9_-]{43})<', box).group(1)
    assert "shown only this once" in box
    assert 'data-copy="new-key-secret"' in box and 'id="new-key-secret"' in box
    assert 'aria-live="polite"' in box and 'hx-history="false"' in box
    assert "Zapier" in html.split("</section>", 1)[1]  # the list below it has the new key
    assert secret not in response.get("Location", "") and secret not in str(dict(response.headers))
    assert secret not in client.get(PAGE).content.decode()


def test_with_htmx_a_refused_name_comes_back_in_place_with_its_error(client, team):
    client.force_login(team["owner"])
    response = client.post(PAGE, {"name": " "}, headers={"HX-Request": "true"})
    assert response.status_code == 422
    html = response.content.decode()
    assert "<html" not in html and "Give it a name" in html and 'aria-invalid="true"' in html
    assert "new-key" not in html and not ApiKey.objects.exists()


def test_the_settings_menu_links_the_page_and_marks_it_current(client, team):
    client.force_login(team["member"])
    html = client.get(PAGE).content.decode()
    assert re.search(r'<a href="/settings/api-keys/"\s+aria-current="page">API keys</a>', html)
    assert html.count('aria-current="page"') == 1


def test_members_see_keys_but_cannot_create_or_revoke(client, team):
    key, _ = api_key_create(workspace=team["ws"], name="CI", actor=team["owner"])
    client.force_login(team["member"])
    page = client.get(PAGE)
    assert page.status_code == 200
    assert "CI" in page.content.decode()
    assert "Create a key" not in page.content.decode()
    assert client.post(PAGE, {"name": "mine"}).status_code == 403
    assert client.post(reverse("api_keys:revoke", args=[key.pk])).status_code == 403
    assert ApiKey.objects.filter(workspace=team["ws"]).count() == 1
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_a_key_needs_a_name(client, team):
    client.force_login(team["owner"])
    response = client.post(PAGE, {"name": "  "})
    assert response.status_code == 422
    assert "Give it a name" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_revoking_stops_the_key_and_says_so(client, team):
    key, secret = api_key_create(workspace=team["ws"], name="CI", actor=team["owner"])
    client.force_login(team["admin"])
    response = client.post(reverse("api_keys:revoke", args=[key.pk]))
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"The key {key.prefix}… was revoked: it stops working at once."
    ]
    assert Api(client, secret).get("balance").status_code == 401
    assert "revoked" in client.get(PAGE).content.decode()


def test_another_workspaces_key_answers_404(client, team):
    other = WorkspaceFactory()
    theirs, _ = api_key_create(workspace=other, name="theirs", actor=None)
    client.force_login(team["owner"])
    assert client.post(reverse("api_keys:revoke", args=[theirs.pk])).status_code == 404
    assert ApiKey.objects.get(pk=theirs.pk).revoked_at is None
    assert "theirs" not in client.get(PAGE).content.decode()


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- Admin ---------------------------------------------------------------------------------------


def test_staff_create_a_service_token_in_the_admin_and_see_its_secret_once(client, staff, workspace):
    client.force_login(staff)
    response = client.post(reverse("admin:api_servicetoken_add"), {"name": "AI gateway"}, follow=True)
    assert response.status_code == 200
    token = ServiceToken.objects.get()
    shown = [m for m in map(str, response.context["messages"]) if "not shown again" in m]
    assert len(shown) == 1
    secret = re.search(r"(sgs_[A-Za-z0-9_-]{43})", shown[0]).group(1)
    assert secret[:12] == token.prefix
    assert token.created_by == staff
    assert Api(client, secret, workspace.pk).get("balance").status_code == 200
    # The change page shows the prefix, never the secret.
    change = client.get(reverse("admin:api_servicetoken_change", args=[token.pk])).content.decode()
    assert token.prefix in change
    assert secret not in change


def test_staff_revoke_service_tokens_from_the_list_and_cannot_delete_them(client, staff, workspace, service_token):
    client.force_login(staff)
    token = ServiceToken.objects.get()
    response = client.post(
        reverse("admin:api_servicetoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
        follow=True,
    )
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == staff
    assert Api(client, service_token, workspace.pk).get("balance").status_code == 401
    assert client.get(reverse("admin:api_servicetoken_delete", args=[token.pk])).status_code == 403


def test_the_admin_lists_api_keys_and_byok_reads_read_only(client, staff, workspace, api_key):
    client.force_login(staff)
    listing = client.get(reverse("admin:api_apikey_changelist"))
    assert listing.status_code == 200
    assert api_key[:12] in listing.content.decode()
    assert client.get(reverse("admin:api_apikey_add")).status_code == 403
    assert client.get(reverse("admin:api_byokkeyread_changelist")).status_code == 200


def test_staff_can_revoke_a_workspaces_api_key_from_the_admin(client, staff, workspace, api_key):
    client.force_login(staff)
    key = ApiKey.objects.get(workspace=workspace)
    response = client.post(
        reverse("admin:api_apikey_changelist"), {"action": "revoke", "_selected_action": [key.pk]}, follow=True
    )
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.revoked_by == staff
    assert Api(client, api_key).get("balance").status_code == 401


def test_non_staff_cannot_reach_the_admin(client, team):
    client.force_login(team["owner"])
    assert client.get(reverse("admin:api_servicetoken_add")).status_code == 302


# --- Docs ----------------------------------------------------------------------------------------


def test_the_docs_page_draws_the_served_document_with_assets_from_this_server(client):
    """Swagger UI from the ninja wheel's static files, served here: the page works offline."""
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from another host
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-init.js"}
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        b"".join(served.streaming_content if served.streaming else [served.content])
    settings = json.loads(re.search(r'<script id="swagger-settings" type="application/json">(.*?)</script>', html)[1])
    assert settings["url"] == "/api/v1/openapi.json"
    assert client.get(settings["url"]).json()["paths"]["/charges"]["post"]["operationId"] == "charge"


def test_an_empty_key_list_says_what_to_do_and_the_docs_name_no_repository_file(client, team):
    client.force_login(team["owner"])
    assert "No keys yet. Create one below for each tool that should charge" in client.get(PAGE).content.decode()
    client.force_login(team["member"])
    assert "No keys yet. An owner or admin can create one." in client.get(PAGE).content.decode()
    docs = client.get("/api/v1/docs").content.decode()
    assert "docs/api.md" not in docs and "sent as <code>Authorization: Bearer …</code>" in docs
