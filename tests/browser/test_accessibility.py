"""axe-core on every page, at desktop and phone widths: no serious or critical violation; and a visible keyboard focus.

axe-core is vendored for the tests only (tests/browser/vendor/, see its README), never served by the site.
The pages come from URL lists, not from what they show today: every settings page the URL
configurations name, the public and account pages, the error pages, the API reference and the
staff admin. A failure lists each violation (page, width, rule, impact, the elements' selectors).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views import defaults

from api import settings_urls as api_settings_urls
from billing import urls as billing_urls
from billing.management.commands.seed_demo import DEMO_STAFF
from billing.models import Membership, Workspace
from billing.services import invitation_create
from tests.browser.conftest import PHONE
from tests.browser.demo_site import staff_admin_pages

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

AXE = next((Path(__file__).parent / "vendor").glob("axe-*.min.js"))
WIDTHS = {"desktop": {"width": 1366, "height": 900}, "phone": PHONE}
FAILING_IMPACTS = {"serious", "critical"}

# Violations inside third-party UI that our templates do not draw, each left out narrowly (one
# rule, inside one container) with the reason. Everything else fails the test.
THIRD_PARTY = [
    # (rule id, CSS selector the element sits inside): why it cannot be fixed in our templates.
    # Swagger UI draws each operation's summary as a button holding its copy-path button (its React markup).
    ("nested-interactive", ".swagger-ui .opblock-summary"),
    # Swagger UI's server picker is a <select> its markup leaves unnamed (only one server is listed).
    ("select-name", ".swagger-ui .servers"),
    # Django admin's change-list search names its box with a magnifier image's alt text only ("Search"),
    # and shows its result count's "Show all" link in the grey of the text around it on narrow screens.
    ("label-title-only", "#changelist-search"),
    ("link-in-text-block", "#changelist-search"),
]

# axe runs with preload off: preloading fetches each stylesheet and adds its text back as a <style>, which the
# site's Content-Security-Policy refuses (the browser fixture fails on it). Only css-orientation-lock reads it.
# Loaded, no htmx request running, and Swagger UI (where there is one) drawn from the document it fetches.
SETTLED = """() => document.readyState === "complete" && !document.querySelector(".htmx-request")
    && (!document.getElementById("swagger-ui") || document.querySelector("#swagger-ui .opblock"))"""

RUN_AXE = """async ([thirdParty]) => {
    const result = await axe.run(document, {resultTypes: ["violations"], preload: false});
    const out = [];
    for (const violation of result.violations) {
        const nodes = violation.nodes.filter((node) => {
            const element = document.querySelector(node.target[node.target.length - 1]);
            return !thirdParty.some(([rule, within]) => rule === violation.id && element && element.closest(within));
        });
        if (nodes.length) out.push({
            id: violation.id, impact: violation.impact, help: violation.help,
            targets: nodes.slice(0, 6).map((node) => node.target.join(" ")), count: nodes.length,
        });
    }
    return out;
}"""


def settings_pages() -> list[str]:
    """Every Settings page the URL configurations name (a new one is checked without touching this test)."""
    named = [f"billing:{p.name}" for p in billing_urls.urlpatterns if p.name and p.name.startswith("settings_")]
    api_names = [p.name for p in api_settings_urls.urlpatterns if not p.pattern.converters]  # not the revoke URL
    named += [f"{api_settings_urls.app_name}:{name}" for name in api_names]
    return [reverse(name) for name in named]


def error_page(status: int, user) -> bytes:
    """What Django's own handler answers for ``status`` (the site's 400/403/500 templates), for a signed-in reader."""
    request = RequestFactory().get("/")
    request.user = user
    if status == 500:
        return defaults.server_error(request).content
    handler = {400: defaults.bad_request, 403: defaults.permission_denied}[status]
    return handler(request, Exception("axe")).content


def lockout_page() -> bytes:
    """The page a locked-out sign-in gets (429), reached as an attacker would, from an address of its own."""
    client = Client(REMOTE_ADDR="192.0.2.1")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post(reverse("login"), {"username": "nobody@example.test", "password": "wrong"})
    assert response.status_code == 429
    return response.content


@pytest.fixture
def site(db):
    """The demo's data (a month of usage, a team, a staff user), a pending invitation and a reset link."""
    call_command("seed_demo", "--force", verbosity=0)
    workspace = Workspace.objects.get(name="Acme Growth")
    owner = Membership.objects.get(workspace=workspace, role=Membership.Role.OWNER).user
    staff = type(owner).objects.get(username=DEMO_STAFF[0])
    invitation_create(
        workspace=workspace, email="invitee@example.test", role="member", invited_by=owner, link_base="/invitations"
    )
    invitation = re.search(r"/invitations/[\w-]+/", mail.outbox[-1].body)[0]
    uid, token = urlsafe_base64_encode(force_bytes(owner.pk)), default_token_generator.make_token(owner)
    reset = reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})
    owner_pages = [*settings_pages(), "/", "/api/v1/docs", invitation, "/no-such-page/"]
    visitor_pages = [
        "/",
        reverse("login"),
        reverse("billing:signup"),
        reverse("password_reset"),
        reverse("password_reset_done"),
        reset,  # redirects to the form that sets the new password
        reverse("password_reset_complete"),
        invitation,
        "/no-such-page/",
    ]
    staff_pages = [*staff_admin_pages(workspace), reverse("billing:two_factor_enrol")]  # enrol: moving to a new phone
    errors = {status: error_page(status, owner) for status in (400, 403, 500)} | {429: lockout_page()}
    return {"owner": owner, "staff": staff, "owner_pages": owner_pages, "visitor_pages": visitor_pages,
            "staff_pages": staff_pages, "errors": errors}  # fmt: skip


def serve(body: bytes, status: int):
    """A route handler answering ``body``."""
    return lambda route: route.fulfill(status=status, body=body, content_type="text/html; charset=utf-8")


def check(page, path: str, width: str, found: list[str]) -> None:
    """Open ``path``, run axe, and note each serious or critical violation."""
    page.goto(path)
    page.wait_for_function(SETTLED, timeout=15_000)  # Swagger UI on a busy machine takes seconds
    shown = page.evaluate("document.documentElement.innerText")
    if "{#" in shown or "{%" in shown:  # a template tag or comment left unparsed (a {# #} comment is one line)
        found.append(f"{path} [{width}] shows template syntax: {shown[shown.find('{') :][:80]!r}")
    if not page.evaluate("typeof window.axe === 'object'"):
        # Run through the DevTools protocol, as Playwright's evaluate does: a <script> added to the page
        # would be inline, which the site's Content-Security-Policy refuses.
        page.evaluate(AXE.read_text())
    for violation in page.evaluate(RUN_AXE, [THIRD_PARTY]):
        if violation["impact"] in FAILING_IMPACTS:
            where = re.sub(r"^https?://[^/]+", "", page.url)
            targets = "; ".join(violation["targets"]) + (" …" if violation["count"] > len(violation["targets"]) else "")
            found.append(
                f"{where} [{width}] {violation['id']} ({violation['impact']}, {violation['count']} elements): "
                f"{violation['help']} — {targets}"
            )


def test_no_page_has_a_serious_or_critical_axe_violation_at_either_width(browsers, site):
    found: list[str] = []
    for width, viewport in WIDTHS.items():
        context = browsers.new(viewport=viewport, user=site["owner"])
        page = context.new_page()
        for path in site["owner_pages"]:
            check(page, path, width, found)
        for status, body in site["errors"].items():
            # Django's handler's own page, served at a path of the live server (its stylesheet is the
            # site's); a 500 as 200, since a 5xx fails every browser test.
            url = f"/error-page-{status}/"
            page.route(f"**{url}", serve(body, min(status, 499)))
            check(page, url, width, found)
        context.clear_cookies()
        for path in site["visitor_pages"]:
            check(page, path, width, found)
        browsers.sign_in(context, site["staff"], second_factor=False)
        check(page, reverse("billing:two_factor_verify"), width, found)  # the code after the password
        browsers.sign_in(context, site["staff"])
        for path in site["staff_pages"]:
            check(page, path, width, found)
    problems = "\n".join(found)
    assert not found, f"{len(found)} problems (serious or critical axe violations, template syntax shown):\n{problems}"


FOCUS_JS = """() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    return {
        tag: el.tagName.toLowerCase(), text: (el.innerText || el.value || el.name || "").trim().slice(0, 30),
        style: style.outlineStyle, width: parseFloat(style.outlineWidth),
        box: {x: Math.max(0, r.x - 8), y: Math.max(0, r.y - 8), width: r.width + 16, height: r.height + 16},
    };
}"""


def shows_focus(page, focused: dict) -> bool:
    """Whether the focused control looks different from itself unfocused (an outline, a ring, a stroke)."""
    with_focus = page.screenshot(clip=focused["box"])
    page.evaluate("() => { window.__focused = document.activeElement; window.__focused.blur(); }")
    without = page.screenshot(clip=focused["box"])
    page.evaluate("() => window.__focused.focus()")
    return with_focus != without


@pytest.mark.parametrize("path", ["billing:settings_billing", "login"])
def test_every_control_reached_with_tab_shows_a_visible_focus(browsers, site, path):
    """Each Tab stop changes on screen when focused, and where that is an outline it is at least 2 px
    (Chromium's own ring, 1 px, is what a control gets when the site's :focus-visible style is lost)."""
    user = site["owner"] if path.startswith("billing:") else None
    page = browsers.page(viewport=WIDTHS["desktop"], user=user)
    page.goto(reverse(path))
    seen, weak = [], []
    for _ in range(80):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUS_JS)
        if focused["tag"] == "body" or (focused["tag"], focused["text"]) in seen[:1]:
            break  # back at the start
        seen.append((focused["tag"], focused["text"]))
        thin_outline = focused["style"] not in ("none", "hidden") and focused["width"] < 2
        if thin_outline or not shows_focus(page, focused):
            weak.append({key: focused[key] for key in ("tag", "text", "style", "width")})
    assert len(seen) >= 5, seen
    assert not weak, f"focused controls without a visible focus: {weak}"
