"""The Content-Security-Policy header (sigora/csp.py), without a browser: on every kind of answer, strict, and
with Stripe's hosted pages in form-action. What a browser makes of it: tests/browser/test_content_security_policy.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from billing import stripe_gateway
from tests.factories import UserFactory, WorkspaceFactory

ROOT = Path(__file__).resolve().parent.parent
STRICT = {
    "default-src": ["'none'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
    "object-src": ["'none'"],
}


def directives(header: str) -> dict[str, list[str]]:
    parts = [part.split() for part in header.split(";") if part.strip()]
    return {name: sources for name, *sources in parts}


def assert_strict(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    assert "unsafe-inline" not in header and "unsafe-eval" not in header and "*" not in header, header
    policy = directives(header)
    for name, sources in STRICT.items():
        assert policy.get(name) == sources, (name, header)
    return policy


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/", "/accounts/login/", "/accounts/signup/", "/accounts/password_reset/", "/no-such-page/", "/admin/login/"],
)
def test_pages_for_visitors_send_the_strict_policy(client, path):
    assert_strict(client.get(path))


@pytest.mark.django_db
def test_signed_in_pages_the_api_docs_the_admin_and_static_files_send_it_too(client):
    owner = UserFactory(is_staff=True, is_superuser=True)
    WorkspaceFactory(owner=owner)
    client.force_login(owner)
    for path in ("/settings/billing/", "/settings/api-keys/", "/api/v1/docs", reverse("admin:index")):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_strict(response)
    assert_strict(client.get("/static/css/app.css"))


@pytest.mark.django_db
def test_forms_may_lead_only_here_and_to_stripes_hosted_pages(client, settings):
    settings.STRIPE_API_BASE = ""
    settings.STRIPE_HOSTED_ORIGINS = ["https://checkout.stripe.com", "https://billing.stripe.com"]
    policy = assert_strict(client.get("/accounts/login/"))
    assert policy["form-action"] == ["'self'", "https://checkout.stripe.com", "https://billing.stripe.com"]
    # The offline double in place of Stripe: its own origin, read per request (it runs on a free port).
    settings.STRIPE_API_BASE = "http://127.0.0.1:12111/"
    assert stripe_gateway.hosted_page_origins() == ["http://127.0.0.1:12111"]
    assert directives(client.get("/accounts/login/")["Content-Security-Policy"])["form-action"] == [
        "'self'",
        "http://127.0.0.1:12111",
    ]


def test_the_api_answers_json_with_a_policy_that_allows_nothing(client, db):
    response = client.get("/api/v1/balance")  # no key: a JSON 401
    assert response.status_code == 401
    assert response["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


INLINE = [
    (re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.I), "a <script> without src"),
    (re.compile(r"<style[\s>]", re.I), "a <style> element"),
    (re.compile(r"\sstyle=", re.I), "a style attribute"),
    (re.compile(r"\son[a-z]+=", re.I), "an inline event handler"),
    (re.compile(r"\bhx-on", re.I), "hx-on (htmx would eval it)"),
    (re.compile(r"hx-trigger=\"[^\"]*\[", re.I), "an htmx trigger filter (htmx would eval it)"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


def test_no_template_holds_inline_script_or_style():
    """What the policy would refuse, found before a browser does (the Stripe double's pages are its own)."""
    found = []
    for template in sorted((ROOT / "templates").rglob("*.html")):
        comments = re.compile(r"{% comment %}.*?{% endcomment %}", re.S)
        text = comments.sub(lambda m: "\n" * m[0].count("\n"), template.read_text())
        for number, line in enumerate(text.splitlines(), 1):
            for pattern, what in INLINE:
                if pattern.search(re.sub(r"{#.*?#}", "", line)):
                    found.append(f"{template.relative_to(ROOT)}:{number}: {what}")
    assert not found, "\n".join(found)
