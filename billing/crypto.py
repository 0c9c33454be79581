"""Encryption of secrets at rest (the BYOK Anthropic key).

``settings.BYOK_ENCRYPTION_KEYS`` is a list of Fernet keys: the first encrypts, every one
decrypts. To rotate, put a new key first and keep the old ones until
``byok_reencrypt`` has rewritten the stored keys; nothing stored is lost on the way.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("BYOK_ENCRYPTION_KEYS is empty: set at least one Fernet key")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            "BYOK_ENCRYPTION_KEYS must be Fernet keys (32 url-safe base64 bytes each); "
            "make one with `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
        ) from None


def _current() -> MultiFernet:
    return _fernet(tuple(settings.BYOK_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured("a stored secret cannot be decrypted with any key in BYOK_ENCRYPTION_KEYS") from None


def reencrypt(token: str) -> str:
    """The same secret encrypted under the first (newest) key."""
    return _current().rotate(token.encode()).decode()
