"""The second factor at sign-in: an authenticator app (TOTP) and single-use backup codes (django-otp).

Every check goes through ``django_otp.verify_token``: the device row is locked while the code is
compared, and a wrong code locks that device for 1, 2, 4, 8 … seconds (settings: the throttle
factors), so codes cannot be guessed at speed. A TOTP code is accepted once (the device keeps
the last time step it took); a backup code is deleted as it is used.

Backup codes are stored as a digest, never readable (OWASP ASVS 2.6.2: look-up secrets kept hashed),
so a copy of the database signs no one in. Each code is 80 random bits, so a fast digest without salt
is enough (nothing can be guessed from it); django-otp compares what it is given with what is stored,
so a typed code is digested before it is checked.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from base64 import b32encode
from dataclasses import dataclass

import django_otp
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing.errors import InvalidRequest, NotPermitted

logger = logging.getLogger(__name__)

APP_DEVICE_NAME = "Authenticator app"
BACKUP_DEVICE_NAME = "Backup codes"
BACKUP_CODES = 10
# 10 random bytes: 16 base32 characters (StaticToken.token's length), 80 bits each.
BACKUP_CODE_BYTES = 10
WRONG_CODE = "That code is not right. Type the 6 digits your app shows now, or one of your backup codes."


@dataclass(frozen=True)
class Enrolled:
    """A confirmed authenticator app, and the backup codes made with it: shown once, never stored readable elsewhere."""

    device: TOTPDevice
    backup_codes: list[str]


def backup_code_stored(code: str) -> str:
    """What is kept of a backup code: the first 80 bits of its SHA-256 in base32 (StaticToken.token's 16 characters).

    Written into migration 0021, which digested the codes stored before it: change both or neither.
    """
    return b32encode(hashlib.sha256(code.encode()).digest()[:BACKUP_CODE_BYTES]).decode().lower()


def code_normalised(raw: str) -> str:
    """A code as typed, without the spaces and dashes people copy or type between its groups."""
    return "".join((raw or "").split()).replace("-", "").lower()[:64]


def two_factor_enrol_begin(*, user: AbstractBaseUser) -> TOTPDevice:
    """The authenticator app being set up: its secret stays the same however often the page is shown."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=APP_DEVICE_NAME, confirmed=False)
    return device


def two_factor_enrol_confirm(*, user: AbstractBaseUser, code: str) -> Enrolled:
    """Confirm the app being set up with a code it shows; it replaces any earlier one, with new backup codes."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        raise InvalidRequest("Start again: open this page to show a new QR code.", field="code")
    _verified(user, device, code_normalised(code))
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        StaticDevice.objects.filter(user=user).delete()
        TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
        device.confirmed = True
        codes = _backup_codes_create(user)
    logger.info("two-factor enrolled: user %s", user.pk)
    return Enrolled(device=device, backup_codes=codes)


def two_factor_app_with_key(*, user: AbstractBaseUser, key: bytes) -> TOTPDevice:
    """``user``'s authenticator app with a secret known in advance: the local demo's staff user only (seed_demo)."""
    device, _ = TOTPDevice.objects.update_or_create(
        user=user, name=APP_DEVICE_NAME, defaults={"key": key.hex(), "confirmed": True}
    )
    return device


def two_factor_check(*, user: AbstractBaseUser, code: str) -> Device:
    """The device that accepts ``code`` (the app's 6 digits, or a backup code, used up), or a refusal saying why."""
    code = code_normalised(code)
    model = TOTPDevice if code.isdigit() and len(code) <= 8 else StaticDevice
    device = model.objects.filter(user=user, confirmed=True).order_by("pk").first()
    if device is None:
        raise InvalidRequest(WRONG_CODE, field="code")
    return _verified(user, device, backup_code_stored(code) if model is StaticDevice else code)


def two_factor_disable(*, user: AbstractBaseUser, code: str) -> bool:
    """Turn the second factor off, with a code from it (True once off). Staff cannot: /admin/ always asks for one."""
    if user.is_staff:
        raise NotPermitted("Staff accounts always sign in with two factors.")
    two_factor_check(user=user, code=code)
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
    logger.info("two-factor turned off: user %s", user.pk)
    return True


def two_factor_reset(*, user: AbstractBaseUser) -> int:
    """Remove every device of ``user`` (a lost phone): their next sign-in enrols again. Returns how many went."""
    removed = 0
    with transaction.atomic():
        for model in (TOTPDevice, StaticDevice):
            removed += model.objects.filter(user=user).delete()[1].get(model._meta.label, 0)
    logger.warning("two-factor devices removed: user %s, %d device(s)", user.pk, removed)
    return removed


def _backup_codes_create(user: AbstractBaseUser) -> list[str]:
    device = StaticDevice.objects.create(user=user, name=BACKUP_DEVICE_NAME, confirmed=True)
    codes = [b32encode(secrets.token_bytes(BACKUP_CODE_BYTES)).decode().lower() for _ in range(BACKUP_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=backup_code_stored(code)) for code in codes)
    return codes


def _verified(user: AbstractBaseUser, device: Device, code: str) -> Device:
    """``device`` if it accepts ``code``; else a refusal, saying how long to wait while the device is locked."""
    allowed, why = device.verify_is_allowed()
    if not allowed and why and "locked_until" in why:
        wait = max(1, math.ceil((why["locked_until"] - timezone.now()).total_seconds()))
        raise InvalidRequest(
            f"Too many wrong codes: wait {wait} second{'s' if wait != 1 else ''}, then try again.", field="code"
        )
    # In a transaction of its own, with the device's row locked: a wrong code's lock-out is kept
    # whatever the caller does next, and two requests cannot both spend one code.
    verified = django_otp.verify_token(user, device.persistent_id, code)
    if verified is None:
        logger.warning("two-factor code refused: user %s, %s", user.pk, type(device).__name__)
        raise InvalidRequest(WRONG_CODE, field="code")
    return verified
