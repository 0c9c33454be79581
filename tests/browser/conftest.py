"""Browser tests: a real Chromium (Debian's, never a downloaded one) against pytest-django's live server.

One browser for the package; each test gets fresh contexts (cookies, storage), so tests never
share a signed-in session. Every page a test opens fails the test on an uncaught JavaScript
error, a 5xx response or a Content-Security-Policy violation (Chromium says each in the console;
``csp_violations`` reads the page's own ``securitypolicyviolation`` events, which a test checks
where it needs to know which element broke the policy).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import connections
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing.auth import PASSWORD_BACKEND
from billing.second_factor import SESSION_REQUIRED

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Every page records the policy's violations as the browser reports them to it. An init script runs
# through the DevTools protocol, before the page's own scripts, and is not itself held to the policy.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
    window.__cspViolations.push({directive: event.effectiveDirective, blocked: event.blockedURI,
        sample: event.sample, source: event.sourceFile, line: event.lineNumber});
});
"""
SCREENSHOTS_DIR = Path(settings.BASE_DIR) / "screenshots"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package")
def browser():
    """One Chromium for the browser tests; Playwright's loop stops before any other test runs."""
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium (never `playwright install`)"
        if os.environ.get("REQUIRE_BROWSER_TESTS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running in this thread while it is open. Django
    # then (1) refuses ORM calls here, which the tests' own factories and charges need, and (2)
    # keeps a second, per-context set of database connections: fresh objects without the test
    # database's serialized contents, so serialized_rollback would restore nothing after the
    # first flush. Allow the calls, and hand the thread's own connections to that second set.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    thread_connections = {alias: connections[alias] for alias in connections}
    try:
        with sync_playwright() as playwright:
            for alias, connection in thread_connections.items():
                connections[alias] = connection
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Contexts:
    """Opens browser contexts against the live server and checks their pages for errors at the end."""

    def __init__(self, browser, base_url: str):
        self.browser = browser
        self.base_url = base_url
        self.contexts = []
        self.problems: list[str] = []

    def new(self, *, viewport=DESKTOP, user=None):
        context = self.browser.new_context(
            base_url=self.base_url,
            viewport=viewport,
            timezone_id="UTC",
            locale="en-US",
            accept_downloads=True,
        )
        context.set_default_timeout(5_000)
        context.add_init_script(RECORD_CSP_VIOLATIONS)
        context.on("page", self._watch)
        if user is not None:
            self.sign_in(context, user)
        self.contexts.append(context)
        return context

    def sign_in(self, context, user, *, second_factor: bool = True) -> None:
        """``user`` signed in on ``context`` in place of whoever was: one context can serve several people.

        With ``second_factor`` (and a device), past it too; without, the session still owes its code.
        """
        context.clear_cookies()
        context.add_cookies([self._session_cookie(user, second_factor=second_factor)])

    def page(self, **kwargs):
        return self.new(**kwargs).new_page()

    def _watch(self, page):
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.problems.append(f"JavaScript error on {page.url}: {error}"))
        page.on(
            "response",
            lambda response: (
                response.status >= 500
                and self.problems.append(f"{response.status} from {response.request.method} {response.url}")
            ),
        )

    def _console(self, page, message) -> None:
        if "Content Security Policy" in message.text:
            self.problems.append(f"Content-Security-Policy violation on {page.url}: {message.text}")

    def _session_cookie(self, user, *, second_factor: bool = True) -> dict:
        """Sign ``user`` in without the form: a server-side session, as django.test.Client.force_login makes."""
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = PASSWORD_BACKEND  # the first backend is axes', which signs no one in
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        # Past the second factor, for whoever has one (the demo's staff user): as a right code leaves the session.
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is not None:
            session[SESSION_REQUIRED] = True
            if second_factor:
                session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
        return {"name": settings.SESSION_COOKIE_NAME, "value": session.session_key, "url": self.base_url}

    def close(self):
        for context in self.contexts:
            context.close()


@pytest.fixture
def browsers(browser, live_server) -> Iterator[Contexts]:
    contexts = Contexts(browser, live_server.url)
    yield contexts
    contexts.close()
    assert not contexts.problems, "\n".join(contexts.problems)


@pytest.fixture
def page(browsers):
    """A desktop-sized page with nobody signed in."""
    return browsers.page()


def csp_violations(page) -> list[dict]:
    """The Content-Security-Policy violations the page has seen since it loaded (its securitypolicyviolation events)."""
    return page.evaluate("window.__cspViolations || []")


def path_of(page) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url)
