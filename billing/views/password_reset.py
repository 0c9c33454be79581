"""Asking for a password reset, throttled per address asked for and per client address.

Django's view, which already answers the same for an address with an account and one without (it
redirects to "check your email" either way). Past ``PASSWORD_RESET_LIMIT_PER_EMAIL`` requests for one
address, or ``PASSWORD_RESET_LIMIT_PER_IP`` from one client, within ``PASSWORD_RESET_WINDOW_SECONDS``,
it still answers exactly so, and sends nothing: the answer never tells whether an account exists, nor
whether the throttle is on. Every request counts, for an account or not, so the counts tell nothing either.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.views import PasswordResetView
from django.http import HttpResponseRedirect

from billing.throttles import window_count
from sigora.client_ip import client_ip

logger = logging.getLogger(__name__)


class ThrottledPasswordResetView(PasswordResetView):
    def form_valid(self, form):
        window = settings.PASSWORD_RESET_WINDOW_SECONDS
        address = client_ip(self.request) or "unknown"
        per_email = window_count(
            scope="reset-email", key=form.cleaned_data["email"].strip().lower(), window_seconds=window
        )
        per_ip = window_count(scope="reset-ip", key=address, window_seconds=window)
        if per_email > settings.PASSWORD_RESET_LIMIT_PER_EMAIL or per_ip > settings.PASSWORD_RESET_LIMIT_PER_IP:
            logger.info("password reset throttled: request %d for the address, %d from %s", per_email, per_ip, address)
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)
