"""The price catalog as the hot path sees it: an in-process snapshot, read without a query.

``charge()`` validates against this snapshot (does the action exist, is the quantity within
its limit, is the specialist known) and leaves the *price* to the database: the charging
statement reads the action's current unit price in the same statement that debits, so a
price change applies from the next charge on in every process, while the snapshot (used
only for validation) is at most ``TTL_SECONDS`` old, and a key it does not know triggers
a reload before it is called unknown.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from billing.models import Action, Specialist

TTL_SECONDS = 60.0
MISS_RELOAD_INTERVAL = 1.0  # unknown keys reload at most this often, so garbage cannot hammer the DB


@dataclass(frozen=True)
class CatalogAction:
    id: int
    key: str
    label: str
    category: str
    specialist: str | None
    unit: str
    unit_price: int
    max_quantity: int

    @property
    def is_ai(self) -> bool:
        return self.category == Action.Category.AI


@dataclass(frozen=True)
class Catalog:
    actions: dict[str, CatalogAction]
    specialists: dict[str, str]
    loaded_at: float


_lock = threading.Lock()
_snapshot: Catalog | None = None


def _load() -> Catalog:
    actions = {
        a.key: CatalogAction(
            id=a.id,
            key=a.key,
            label=a.label,
            category=a.category,
            specialist=a.specialist_id,
            unit=a.unit,
            unit_price=a.unit_price,
            max_quantity=a.max_quantity,
        )
        for a in Action.objects.filter(is_active=True)
    }
    specialists = dict(Specialist.objects.values_list("key", "label"))
    return Catalog(actions=actions, specialists=specialists, loaded_at=time.monotonic())


def catalog() -> Catalog:
    """The current snapshot, reloaded when older than ``TTL_SECONDS``."""
    global _snapshot
    snapshot = _snapshot
    if snapshot is None or time.monotonic() - snapshot.loaded_at > TTL_SECONDS:
        with _lock:
            _snapshot = snapshot = _load()
    return snapshot


def _reload_on_miss() -> Catalog:
    global _snapshot
    snapshot = catalog()
    if time.monotonic() - snapshot.loaded_at >= MISS_RELOAD_INTERVAL:
        with _lock:
            _snapshot = snapshot = _load()
    return snapshot


def action_lookup(key: str) -> CatalogAction | None:
    found = catalog().actions.get(key)
    return found if found is not None else _reload_on_miss().actions.get(key)


def specialist_known(key: str) -> bool:
    return key in catalog().specialists or key in _reload_on_miss().specialists


def catalog_invalidate() -> None:
    """Forget the snapshot (after a catalog change in this process, and between tests)."""
    global _snapshot
    with _lock:
        _snapshot = None
