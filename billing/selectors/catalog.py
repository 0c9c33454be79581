"""The catalog as the pages show it: plans and packs on offer, the price list, tools' and specialists' names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from billing.bounds import fits_column
from billing.catalog_cache import Catalog, catalog, specialist_known
from billing.models import SIGNUP_PLAN_KEY, Action, Plan, Specialist, TopUpPack


@dataclass(frozen=True)
class PackOffer:
    pack: TopUpPack
    discount_percent: int


@dataclass(frozen=True)
class ActionGroup:
    title: str
    actions: list[Action]


@dataclass(frozen=True)
class CatalogOverview:
    plans: list[Plan]
    packs: list[PackOffer]
    action_groups: list[ActionGroup]


def active_plans() -> list[Plan]:
    """The plans on offer, in their order (sort order, then id)."""
    return list(Plan.objects.filter(is_active=True))


def signup_plan() -> Plan | None:
    """The plan a sign-up's workspace starts on, as the sign-up page describes it: None when it is missing or
    withdrawn (``workspace_create`` opens workspaces only on an active plan)."""
    return Plan.objects.filter(key=SIGNUP_PLAN_KEY, is_active=True).first()


def pack_offers() -> list[PackOffer]:
    """Active packs with their discount against the base rate (the smallest pack's price per credit)."""
    return _with_discounts(list(TopUpPack.objects.filter(is_active=True)))


def _with_discounts(packs: list[TopUpPack]) -> list[PackOffer]:
    if not packs:
        return []
    base = min(packs, key=lambda pack: pack.amount)
    return [PackOffer(pack=pack, discount_percent=pack.discount_percent(base)) for pack in packs]


def catalog_overview() -> CatalogOverview:
    """The help page's price list: plans, packs, and the active actions grouped (AI, then by specialist)."""
    actions = list(Action.objects.filter(is_active=True).select_related("specialist"))
    groups = [ActionGroup("AI usage (internal)", [a for a in actions if a.is_ai])]
    for specialist in Specialist.objects.all():
        members = [a for a in actions if not a.is_ai and a.specialist_id == specialist.key]
        if members:
            groups.append(ActionGroup(specialist.label, members))
    return CatalogOverview(plans=active_plans(), packs=pack_offers(), action_groups=groups)


@dataclass(frozen=True)
class Offers:
    plans: list[Plan]
    packs: list[PackOffer]


# The billing page's "Top up or upgrade" region, kept with the catalog snapshot it was read
# with. Kept because it is measured: read on every view it would be two more queries, taking
# the page past its budget of four, and the page keeps the region's markup for as long as this
# object stays the same (billing.views.offers_markup).
_offers_cache: tuple[Catalog, Offers] | None = None


def offers() -> Offers:
    """The active plans and packs as the billing page offers them, read again with each catalog snapshot.

    So a price or pack change shows on the page when the catalog the engine validates by is
    reloaded (``billing.catalog_cache.TTL_SECONDS``, or at once in the process that made the
    change), without a query on every page view. The same object is returned until then.
    """
    global _offers_cache
    snapshot = catalog()
    cached = _offers_cache
    if cached is None or cached[0] is not snapshot:
        cached = _offers_cache = (snapshot, Offers(plans=active_plans(), packs=pack_offers()))
    return cached[1]


# Names of tools and specialists come from the in-process catalog snapshot (billing.catalog_cache),
# so the pages join nothing to label a row. Retired actions are not in it: those few are read.


class ToolName(NamedTuple):
    key: str
    label: str
    unit: str


# Built once per catalog snapshot, like the offers above: every API charge names its tool, and building
# the whole map again for each was a measurable share of the call (docs/performance.md).
_names_cache: tuple[Catalog, Mapping[int, ToolName]] | None = None


def tool_names(ids: Iterable[int | None] = ()) -> Mapping[int, ToolName]:
    """The catalog's actions by id, and any of ``ids`` it lacks (retired actions) from the database."""
    global _names_cache
    snapshot = catalog()
    cached = _names_cache
    if cached is None or cached[0] is not snapshot:
        names = {a.id: ToolName(a.key, a.label, a.unit) for a in snapshot.actions.values()}
        cached = _names_cache = (snapshot, MappingProxyType(names))
    names = cached[1]
    missing = {i for i in ids if i is not None and i not in names}
    if not missing:
        return names
    rows = Action.objects.filter(id__in=missing).values_list("id", "key", "label", "unit")
    return {**names, **{pk: ToolName(key, label, unit) for pk, key, label, unit in rows}}


def tool_named(key: str) -> tuple[int, ToolName] | None:
    """An action's id and names by its key: the catalog's first, a retired one from the database."""
    found = catalog().actions.get(key)
    if found is not None:
        return found.id, ToolName(found.key, found.label, found.unit)
    if not fits_column(key, Action, "key"):  # a key no action could have (NUL, too long): no lookup
        return None
    row = Action.objects.filter(key=key).values_list("id", "key", "label", "unit").first()
    return None if row is None else (row[0], ToolName(*row[1:]))


def specialist_names() -> dict[str, str]:
    """Every specialist's label by key, in the catalog's order (sort order, then key)."""
    return catalog().specialists


def specialist_label(key: str | None, names: dict[str, str] | None = None) -> str:
    """A specialist's label ("" for none), from ``names`` (``specialist_names()``) or a newer snapshot."""
    if key is None:
        return ""
    names = specialist_names() if names is None else names
    if key not in names and specialist_known(key):  # added since the snapshot was taken
        names = catalog().specialists
    return names.get(key, key)
