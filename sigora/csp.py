"""The Content-Security-Policy: django-csp's middleware, with Stripe's hosted pages in ``form-action``.

The policy itself is ``CONTENT_SECURITY_POLICY`` (sigora/settings/base.py). Buying credits and the
billing portal are forms whose POST answers with a 303 to Stripe Checkout or the portal (or to the
offline double in development); the browser holds that redirect to ``form-action``. Where those pages
live comes from the Stripe settings (``billing.stripe_gateway.hosted_page_origins``), read per request
so that settings changed at run time (the tests' Stripe double on a free port) apply at once.
"""

from __future__ import annotations

from csp.middleware import CSPMiddleware, PolicyParts
from django.http import HttpRequest, HttpResponseBase

from billing import stripe_gateway


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        update = dict(parts.update or {})  # a view's csp_update, if it has one, keeps its own sources
        added = update.get("form-action") or []
        update["form-action"] = [*([added] if isinstance(added, str) else added), *stripe_gateway.hosted_page_origins()]
        parts.update = update
        return parts
