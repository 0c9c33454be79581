"""The API's route table: each resource module registers its handlers with ``@route``."""

from __future__ import annotations

import re
from collections.abc import Callable

from .encoding import Params
from .store import Obj, Store, list_filter

Handler = Callable[..., Obj]  # handler(store, params, *ids from the path) -> object or list

_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``METHOD /v1/...``; ``{id}`` in the pattern matches one path segment."""
    compiled = re.compile("^" + pattern.replace("{id}", "([^/]+)") + "$")

    def register(handler: Handler) -> Handler:
        _ROUTES.append((method, compiled, handler))
        return handler

    return register


def resolve(method: str, path: str) -> tuple[Handler, tuple[str, ...]] | None:
    for route_method, pattern, handler in _ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            return handler, match.groups()
    return None


def retrieve(path: str, kind: str, *, label: str | None = None) -> None:
    """Register ``GET {path}/{id}`` answering the stored ``kind`` object."""

    def answer(store: Store, params: Params, object_id: str) -> Obj:
        return store.get(object_id, kind, label=label)

    route("GET", path + "/{id}")(answer)


def retrieve_and_list(path: str, kind: str, *filters: str, label: str | None = None) -> None:
    """Register ``GET {path}/{id}`` and ``GET {path}`` (filtered by equality on ``filters``) for ``kind``."""

    def listing(store: Store, params: Params) -> Obj:
        return store.page(list_filter(store.all(kind), params, *filters), params, path)

    retrieve(path, kind, label=label)
    route("GET", path)(listing)
