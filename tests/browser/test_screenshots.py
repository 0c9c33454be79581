"""Full-page screenshots of every page at desktop and phone widths, for a person to look at.

Only with SCREENSHOTS=1 (``SCREENSHOTS=1 .venv/bin/python -m pytest tests/browser/test_screenshots.py``);
the PNGs land in screenshots/ (git-ignored), named after the visits of tests/browser/demo_site.py. Whether
anything sticks out is tests/browser/test_phone_layout.py's to say; these are for judging how the pages look.
"""

from __future__ import annotations

import os

import pytest

from tests.browser.conftest import PHONE, SCREENSHOTS_DIR
from tests.browser.demo_site import WIDE, demo_site_build

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(os.environ.get("SCREENSHOTS") != "1", reason="screenshots only with SCREENSHOTS=1"),
]


def test_screenshots_of_every_page_at_desktop_and_phone_widths(browsers, live_server):
    visits = demo_site_build(live_server.url).visits
    SCREENSHOTS_DIR.mkdir(exist_ok=True)
    for size_name, viewport in (("desktop", WIDE), ("phone", PHONE)):
        for visit in visits:
            page = visit.open(browsers, viewport)
            page.screenshot(path=SCREENSHOTS_DIR / f"{visit.name}-{size_name}.png", full_page=True)
            if visit.name == "billing":  # what the README shows (docs/billing-page*.png): the first screen
                page.screenshot(path=SCREENSHOTS_DIR / f"{visit.name}-{size_name}-first-screen.png")
            page.context.close()
