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


def test_the_sites_button_style_stays_out_of_swagger_ui(browsers, live_server):
    """The schemas at the foot of the reference are Swagger's buttons: the site's filled indigo button
    style made them pills, with "Expand all" grey on indigo, unreadable."""
    page = browsers.new().new_page()
    page.goto("/api/v1/docs")
    expect(page.locator(".swagger-ui section.models button").first).to_be_visible()
    site, swaggers = page.evaluate(
        """() => {
            const ours = document.createElement("button");
            document.body.appendChild(ours);
            const theirs = [...document.querySelectorAll(".swagger-ui section.models button")];
            return [getComputedStyle(ours).backgroundColor, theirs.map((b) => getComputedStyle(b).backgroundColor)];
        }"""
    )
    assert len(swaggers) > 10
    assert site not in swaggers
