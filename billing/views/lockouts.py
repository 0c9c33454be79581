"""The answer to a sign-in refused for too many failures, on the customer's page and the admin's.

django-axes calls ``locked_out`` (settings ``AXES_LOCKOUT_CALLABLE``) for the attempt that reaches the
limit and for every one while the lockout lasts, the right password included: 429, what happened and
the time to try again. It says the same whether or not the account exists, as axes counts every name.
"""

from __future__ import annotations

import math

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from billing import selectors


def locked_out(request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None) -> HttpResponse:
    ends = selectors.lockout_ends(request, credentials)
    context = {"ends": ends, "sign_in_url": request.get_full_path()}
    response = render(request, "registration/locked_out.html", context, status=429)
    if ends is not None:
        response["Retry-After"] = str(max(1, math.ceil((ends - timezone.now()).total_seconds())))
    return response
