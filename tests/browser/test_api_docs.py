"""/api/v1/docs in a real browser with every other host unreachable: Swagger UI, served by this site,
draws the served document."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_the_api_docs_draw_every_operation_offline(browsers, live_server):
    context = browsers.new()
    elsewhere = []

    def only_this_server(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    page.goto("/api/v1/docs")
    charge = page.locator(".opblock-post", has_text="Charge one usage event")
    expect(charge).to_be_visible()
    expect(page.locator(".opblock-get", has_text="/byok-key")).to_be_visible()
    charge.locator(".opblock-summary").click()
    expect(charge).to_contain_text("insufficient_credits")
    assert elsewhere == []
