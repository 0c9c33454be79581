"""Full-page screenshots of every page at desktop and phone widths, for a person to look at.

Only with SCREENSHOTS=1 (``SCREENSHOTS=1 .venv/bin/python -m pytest tests/browser/test_screenshots.py``);
the PNGs land in screenshots/ (git-ignored), with layout.txt listing what sticks out sideways
(for a person to judge: the test fails only if a page does not render).
"""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from api.credentials import api_key_create, api_key_revoke
from billing.models import Invitation, Membership, Workspace
from billing.services import byok_set
from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOTS_DIR
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(os.environ.get("SCREENSHOTS") != "1", reason="screenshots only with SCREENSHOTS=1"),
]

SIGNED_IN = {
    "billing": "/settings/billing/",
    "byok": "/settings/byok/",
    "members": "/settings/members/",
    "api-keys": "/settings/api-keys/",
    "activity": "/settings/activity/",
}
SIGNED_OUT = {"login": "/accounts/login/", "signup": "/accounts/signup/", "pricing": "/"}

# What sticks out sideways: past the viewport (the whole page scrolls), past its card's padding,
# or hidden in a scroll box (.table-scroll) until scrolled. Only the outermost offender is listed.
LAYOUT_JS = """() => {
    const width = document.documentElement.clientWidth;
    const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
        + (el.classList.length ? "." + [...el.classList].join(".") : "")
        + (el.dataset.testid ? `[data-testid=${el.dataset.testid}]` : "");
    const path = (el) => {
        const parts = [];
        for (let e = el; e && e !== document.body && parts.length < 4; e = e.parentElement) parts.unshift(name(e));
        return parts.join(" > ");
    };
    const found = {viewport: [], card: [], scrolls: []};
    const reported = new Set();
    const report = (kind, el, detail) => {
        for (let p = el.parentElement; p; p = p.parentElement) if (reported.has(p)) return;
        reported.add(el);
        const text = (el.innerText || el.value || "").trim().replace(/\\s+/g, " ").slice(0, 40);
        found[kind].push(`${path(el)} "${text}" ${detail}`);
    };
    for (const el of document.querySelectorAll("body *")) {
        const r = el.getBoundingClientRect();
        if (!r.width || el.closest(".visually-hidden, .skip-link, svg")) continue;
        if (el.matches(".table-scroll") && el.scrollWidth > el.clientWidth + 1) {
            report("scrolls", el, `shows ${el.clientWidth}px of ${el.scrollWidth}px`);
            continue;
        }
        if (el.closest(".table-scroll")) continue;
        if (r.right > width + 1) report("viewport", el, `right=${Math.round(r.right)} > ${width}`);
        const card = el.parentElement.closest(".card");
        if (!card) continue;
        const edge = card.getBoundingClientRect().right - parseFloat(getComputedStyle(card).paddingRight);
        if (r.right > edge + 1) report("card", el, `right=${Math.round(r.right)} > content edge ${Math.round(edge)}`);
    }
    return {scrollWidth: document.documentElement.scrollWidth, width, ...found};
}"""


def test_screenshots_of_every_page_at_desktop_and_phone_widths(browsers):
    call_command("seed_demo", "--force", verbosity=0)
    workspace = Workspace.objects.get(name="Acme Growth")
    owner = Membership.objects.get(workspace=workspace, role=Membership.Role.OWNER).user
    byok_set(workspace=workspace, api_key="sk-ant-api03-" + "x" * 40 + "DEMO", actor=owner)
    Invitation.objects.create(
        workspace=workspace,
        email="pending.invitee.with.a.long.address@example-company.test",
        role=Membership.Role.ADMIN,
        token_hash="0" * 64,
        invited_by=owner,
        expires_at=timezone.now() + timezone.timedelta(days=7),
    )
    UserFactory(email="someone@example.test")
    api_key_create(workspace=workspace, name="Zapier (marketing automations)", actor=owner)
    retired, _ = api_key_create(workspace=workspace, name="Old CI runner", actor=owner)
    api_key_revoke(api_key=retired, actor=owner)
    SCREENSHOTS_DIR.mkdir(exist_ok=True)
    report = []
    for size_name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        for who, pages in ((owner, SIGNED_IN), (None, SIGNED_OUT)):
            page = browsers.page(viewport=viewport, user=who)
            for name, path in pages.items():
                page.goto(path)
                expect(page.locator("main h1").first).to_be_visible()
                page.evaluate("document.fonts.ready")
                page.screenshot(path=SCREENSHOTS_DIR / f"{name}-{size_name}.png", full_page=True)
                layout = page.evaluate(LAYOUT_JS)
                report.append(f"{name}-{size_name}: page {layout['scrollWidth']}px wide, viewport {layout['width']}px")
                for kind in ("viewport", "card", "scrolls"):
                    report.extend(f"    past {kind}: {item}" for item in layout[kind][:8])
    (SCREENSHOTS_DIR / "layout.txt").write_text("\n".join(report) + "\n")
    print("\n".join(report))
