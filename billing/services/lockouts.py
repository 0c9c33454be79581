"""Lifting sign-in lockouts: staff's one write to what django-axes records."""

from __future__ import annotations

import logging

from axes.utils import reset
from django.contrib.auth.base_user import AbstractBaseUser

logger = logging.getLogger(__name__)


def lockout_lift(*, accounts_and_addresses: set[tuple[str | None, str | None]], actor: AbstractBaseUser) -> int:
    """Forget every failed sign-in counted against these accounts and these client addresses; the count forgotten.

    Both, for each pair: a person locked out is refused while either their account or their address
    is locked, and the attempt that staff pick names both.
    """
    pairs = sorted(accounts_and_addresses, key=str)
    forgotten = sum(reset(ip=address, username=username, ip_or_username=True) for username, address in pairs)
    lifted = ", ".join(f"{username} from {address}" for username, address in pairs)
    logger.info("sign-in lockout lifted by %s: %s (%d attempt rows)", actor.get_username(), lifted, forgotten)
    return forgotten
