"""Settings → API keys in a real browser: an owner makes a key, a tool uses it, the owner revokes it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from billing.models import LedgerEntry
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_an_owner_creates_a_key_a_tool_charges_with_it_and_revoking_stops_it(browsers):
    owner = UserFactory(email="owner@example.test")
    workspace = WorkspaceFactory(owner=owner, name="Acme")
    context = browsers.new(user=owner)
    page = context.new_page()
    page.goto("/settings/billing/")
    page.get_by_role("link", name="API keys").click()
    expect(page).to_have_url(re.compile(r"/settings/api-keys/$"))
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()

    page.get_by_label("Name").fill("Zapier")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("secret").inner_text()
    assert re.fullmatch(r"sgk_[A-Za-z0-9_-]{43}", secret)
    expect(page.get_by_test_id("new-key")).to_contain_text("only this once")

    # The tool calls the API on the live server with it.
    api = context.request
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    charged = api.post("/api/v1/charges", headers=headers, data='{"action": "gmail-send", "idempotency_key": "zap-1"}')
    assert charged.status == 201
    assert charged.json()["balance"]["total"]["credits"] == "9800"
    assert LedgerEntry.objects.filter(workspace=workspace, idempotency_key="zap-1").exists()

    # Back on the page (a fresh load): listed by its prefix, the secret gone.
    page.goto("/settings/api-keys/")
    row = page.locator(f'tr[data-key="{secret[:12]}"]')
    expect(row).to_contain_text("Zapier")
    expect(row).to_contain_text("active")
    assert secret not in page.content()

    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("was revoked")
    expect(page.locator(f'tr[data-key="{secret[:12]}"]')).to_contain_text("revoked")
    refused = api.post("/api/v1/charges", headers=headers, data='{"action": "gmail-send", "idempotency_key": "zap-2"}')
    assert refused.status == 401
    assert refused.json()["code"] == "unauthenticated"
