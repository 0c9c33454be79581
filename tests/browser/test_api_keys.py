"""Settings → API keys in a real browser: an owner makes a key, a tool uses it, the owner revokes it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from api.models import ApiKey
from billing.models import LedgerEntry
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Contexts
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


def test_a_new_key_is_shown_once_in_a_box_whose_copy_button_puts_it_on_the_clipboard(browsers, live_server):
    owner = UserFactory(email="owner@example.test")
    workspace = WorkspaceFactory(owner=owner, name="Acme")
    context = browsers.new(user=owner)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    page.goto("/settings/api-keys/")
    expect(page.get_by_test_id("new-key")).to_have_count(0)

    page.get_by_label("Name").fill("Zapier")
    page.get_by_role("button", name="Create key").click()
    box = page.get_by_test_id("new-key")
    expect(box).to_be_visible()
    expect(box).to_be_focused()  # keyboard and screen-reader users land on it
    expect(box).to_contain_text("shown only this once")
    secret = box.get_by_test_id("secret").inner_text()
    assert re.fullmatch(r"sgk_[A-Za-z0-9_-]{43}", secret)
    expect(page).to_have_url(re.compile(r"/settings/api-keys/$"))
    expect(page.locator("tr[data-key] td:first-child")).to_have_text(["Zapier"])  # listed below, in place

    status = box.get_by_role("status")
    expect(status).to_have_text("")
    box.get_by_role("button", name="Copy").click()
    expect(status).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret

    # A reload asks for the page again (the address is the GET's): the secret is gone, no key is made twice.
    page.reload()
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    expect(page.get_by_test_id("new-key")).to_have_count(0)
    assert secret not in page.content()
    assert list(ApiKey.objects.filter(workspace=workspace).values_list("name", flat=True)) == ["Zapier"]

    # "Done" closes the box.
    page.get_by_label("Name").fill("Make")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_test_id("new-key")).to_be_visible()
    page.get_by_role("link", name="Done").click()
    expect(page.locator("tr[data-key] td:first-child")).to_have_text(["Make", "Zapier"])
    expect(page.get_by_test_id("new-key")).to_have_count(0)


def test_the_back_button_does_not_bring_a_shown_secret_back(browser, live_server):
    """Playwright turns Chromium's back/forward cache off; this browser has it on, as people's do."""
    owner = UserFactory(email="owner@example.test")
    WorkspaceFactory(owner=owner, name="Acme")
    with_cache = browser.browser_type.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        ignore_default_args=["--disable-back-forward-cache"],
    )
    contexts = Contexts(with_cache, live_server.url)
    try:
        page = contexts.page(user=owner)
        page.goto("/settings/api-keys/")
        page.get_by_label("Name").fill("CI")
        page.get_by_role("button", name="Create key").click()
        secret = page.get_by_test_id("secret").inner_text()
        page.get_by_role("link", name="Activity").click()
        expect(page.get_by_role("heading", name="Activity", level=1)).to_be_visible()
        page.go_back(wait_until="commit")  # a page restored from the cache fires no load event
        expect(page.locator("tr[data-key] td:first-child")).to_have_text(["CI"])
        expect(page.get_by_test_id("new-key")).to_have_count(0)
        assert secret not in page.content()
    finally:
        contexts.close()
        with_cache.close()
    assert not contexts.problems, contexts.problems


def test_without_the_clipboard_api_copy_selects_the_secret_and_says_how_to_copy_it(browsers):
    owner = UserFactory(email="owner@example.test")
    WorkspaceFactory(owner=owner, name="Acme")
    page = browsers.page(user=owner)
    # Clipboard permission not granted and the API refusing: what an embedded or locked-down browser does.
    page.add_init_script(
        "const refused = () => Promise.reject(new Error('denied'));"
        "Object.defineProperty(navigator, 'clipboard', {value: {writeText: refused}});"
        "document.execCommand = () => false;"
    )
    page.goto("/settings/api-keys/")
    page.get_by_label("Name").fill("Zapier")
    page.get_by_role("button", name="Create key").click()
    box = page.get_by_test_id("new-key")
    secret = box.get_by_test_id("secret").inner_text()
    box.get_by_role("button", name="Copy").click()
    expect(box.get_by_role("status")).to_have_text("Selected: press Ctrl+C (⌘C on a Mac) to copy it.")
    assert page.evaluate("window.getSelection().toString().trim()") == secret
