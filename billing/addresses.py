"""Email addresses as the "one Free grant per address" rule compares them (issue 18)."""

from __future__ import annotations

# Google delivers every spelling of a Gmail address to one mailbox: dots in the local part are
# ignored, and googlemail.com is gmail.com.
_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def address_normalized(email: str) -> str:
    """``email`` as one mailbox: case-folded, without a ``+tag``, and Gmail's dots and domain alias removed.

    Plus-addressing is dropped for every domain (the major providers all deliver ``name+x`` to
    ``name``): a script minting ``me+1@…``, ``me+2@…`` reaches one inbox, so it gets one grant. A
    provider where ``+`` is a real character is rare; two of its users sharing the part before ``+``
    would share one grant, which costs them the Free bucket, never money.
    """
    local, _, domain = email.strip().casefold().rpartition("@")
    local = local.split("+", 1)[0] or local  # "+x@…" keeps its local part whole
    if domain in _GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"
