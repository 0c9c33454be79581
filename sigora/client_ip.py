"""The address a request came from, as the sign-in lockout and the password-reset throttle count it.

Behind ``TRUSTED_PROXY_COUNT`` proxies that each append the address they were reached from to
``X-Forwarded-For`` (HAProxy's ``option forwardfor``), the client is the entry the outermost of them
wrote: that many from the right. Entries further left were sent by the client and prove nothing;
trusting them would let one client count as a new address on every request. With no trusted proxy
(the default) the header is never read: the connection's own address is the client.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as Python writes it (IPv6 compressed, lower case), or None if none is valid."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        # Fewer entries than proxies: the request did not come through them all (a health check, a
        # misconfiguration); the connection's address is then the only one known.
        if len(hops) >= proxies and (address := _address(hops[-proxies])):
            return address
    return _address(request.META.get("REMOTE_ADDR", ""))


def _address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
