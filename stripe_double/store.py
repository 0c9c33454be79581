"""The double's memory: every object by id, the clock, ids, lists, expansion and events.

Objects are plain dicts shaped as the pinned API version returns them. Keys starting with ``_`` are
the double's own bookkeeping and never leave it. Everything here is guarded by one lock, held for
the whole of each API call, page action or control call.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .encoding import Params, as_int, as_list, as_str
from .errors import invalid, not_found

API_VERSION = "2026-10-28.endive"  # what stripe==16.1.0 sends as Stripe-Version

Obj = dict[str, Any]
Renderer = Callable[["Store", Obj], None]
Includable = Callable[["Store", Obj], Obj]

_ALPHABET = string.ascii_letters + string.digits


class Clock:
    """Unix seconds: real time, or frozen at a given instant, plus whatever ``advance`` added."""

    def __init__(self, source: Callable[[], float] | int | None = None) -> None:
        if isinstance(source, int):
            frozen = source
            self._source: Callable[[], float] = lambda: frozen
        else:
            self._source = source or time.time
        self._offset = 0

    def now(self) -> int:
        return int(self._source()) + self._offset

    def advance(self, seconds: int) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds


class Store:
    def __init__(self, clock: Clock) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.base_url = ""
        self.objects: dict[str, Obj] = {}
        self.events: list[Obj] = []
        self.outbox: list[Obj] = []
        self.request: dict[str, str | None] = {"id": None, "idempotency_key": None}
        self.webhook_endpoints: Callable[[], int] = lambda: 0
        self.renderers: dict[str, Renderer] = {}
        self.includables: dict[tuple[str, str], Includable] = {}
        self._sequence = itertools.count()

    def now(self) -> int:
        return self.clock.now()

    # --- ids and objects -----------------------------------------------------------------------

    def new_id(self, prefix: str, length: int = 24) -> str:
        while True:
            candidate = prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))
            if candidate not in self.objects:
                return candidate

    def add(self, obj: Obj) -> Obj:
        obj["_seq"] = next(self._sequence)
        self.objects[obj["id"]] = obj
        return obj

    def find(self, object_id: Any) -> Obj | None:
        return self.objects.get(object_id) if isinstance(object_id, str) else None

    def get(self, object_id: Any, kind: str, *, label: str | None = None, param: str = "id") -> Obj:
        obj = self.find(object_id)
        if obj is None or obj.get("object") != kind:
            raise not_found(label or kind.split(".")[-1].replace("_", " "), str(object_id), param=param)
        return obj

    def all(self, kind: str) -> list[Obj]:
        return [obj for obj in self.objects.values() if obj.get("object") == kind]

    def render(self, obj: Obj) -> Obj:
        """The object as the API shows it: a deep copy without bookkeeping, embedded objects filled in."""
        shown = copy.deepcopy({key: value for key, value in obj.items() if not key.startswith("_")})
        renderer = self.renderers.get(obj.get("object", ""))
        if renderer:
            renderer(self, shown)
        return shown

    # --- answers: expansion and lists -----------------------------------------------------------

    def present(self, result: Obj, expand: Iterable[str] = ()) -> Obj:
        """What an API call answers: the rendered object or list, with ``expand[]`` applied."""
        shown = (
            dict(result, data=[self.render(item) for item in result["data"]])
            if _is_list(result)
            else self.render(result)
        )
        for path in expand:
            shown = self._expand(shown, path.split("."), path)
        return shown

    def _expand(self, value: Any, path: list[str], whole: str) -> Any:
        if not path or not isinstance(value, dict):
            return value
        head, rest = path[0], path[1:]
        if _is_list(value) and head == "data":
            value["data"] = [self._expand(item, rest, whole) for item in value["data"]]
            return value
        include = self.includables.get((value.get("object", ""), head))
        if include is not None:
            source = self.find(value.get("id"))
            child: Any = include(self, source) if source else None
        elif head in value:
            child = value[head]
            target = self.find(child)
            if target is not None:
                child = self.render(target)
        else:
            raise invalid(f"This property cannot be expanded ({whole}).", param="expand")
        value[head] = self._expand(child, rest, whole)
        return value

    def page(self, items: list[Obj], params: Params, url: str) -> Obj:
        """A list object over ``items``, newest first, honouring limit/starting_after/ending_before/created."""
        limit = as_int(params, "limit") or 10
        if not 1 <= limit <= 100:
            raise invalid("This value must be between 1 and 100.", param="limit")
        items = [item for item in items if _created_matches(item["created"], params.get("created"))]
        items.sort(key=lambda item: (item["created"], item["_seq"]), reverse=True)
        after, before = as_str(params, "starting_after"), as_str(params, "ending_before")
        if after is not None:
            items = items[_position(items, after, "starting_after") + 1 :]
            chosen = items[:limit]
        elif before is not None:
            items = items[: _position(items, before, "ending_before")]
            chosen = items[-limit:]
        else:
            chosen = items[:limit]
        return {"object": "list", "data": chosen, "has_more": len(items) > len(chosen), "url": url}

    # --- events ------------------------------------------------------------------------------------

    def emit(self, event_type: str, obj: Obj, previous: Obj | None = None) -> Obj:
        """Record an event carrying a snapshot of ``obj`` now; it goes out once the caller is answered."""
        data: Obj = {"object": self.render(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        event = self.add(
            {
                "id": self.new_id("evt_"),
                "object": "event",
                "api_version": API_VERSION,
                "created": self.now(),
                "data": data,
                "livemode": False,
                "pending_webhooks": self.webhook_endpoints(),
                "request": dict(self.request),
                "type": event_type,
            }
        )
        self.events.append(event)
        self.outbox.append(event)
        return event

    @contextmanager
    def updating(self, obj: Obj, event_type: str) -> Iterator[Obj]:
        """Change ``obj`` in the block; if anything changed, emit ``event_type`` with ``previous_attributes``.

        A refusal raised in the block leaves ``obj`` as it was, as a refused Stripe request would.
        """
        before, saved = self.render(obj), copy.deepcopy(obj)
        try:
            yield obj
        except BaseException:
            obj.clear()
            obj.update(saved)
            raise
        previous = changes(before, self.render(obj))
        if previous:
            self.emit(event_type, obj, previous)

    def take_outbox(self) -> list[Obj]:
        events, self.outbox = self.outbox, []
        return events


def changes(before: Obj, after: Obj) -> Obj:
    """``previous_attributes`` for an update: the old values of what changed (hashes compared key by key)."""
    previous: Obj = {}
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        if key.startswith("_") or old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and not _is_list(old) and "object" not in old:
            previous[key] = changes(old, new)
        else:
            previous[key] = copy.deepcopy(old)
    return previous


def _is_list(value: Any) -> bool:
    return isinstance(value, dict) and value.get("object") == "list"


def _position(items: list[Obj], object_id: str, param: str) -> int:
    for index, item in enumerate(items):
        if item["id"] == object_id:
            return index
    raise invalid(f"No such object: '{object_id}'", param=param, code="resource_missing")


def _created_matches(created: int, condition: Any) -> bool:
    if condition in (None, ""):
        return True
    if not isinstance(condition, dict):
        return created == as_int({"created": condition}, "created")
    tests = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
    for op in condition:
        if op not in tests:
            raise invalid(f"Received unknown parameter: created[{op}]", param=f"created[{op}]")
        if not tests[op](created, as_int(condition, op)):
            return False
    return True


def list_filter(items: Iterable[Obj], params: Params, *fields: str) -> list[Obj]:
    """Keep the items whose listed fields equal the filters given (``customer=…``, ``status=…``)."""
    wanted = {field: _text(params[field]) for field in fields if params.get(field) not in (None, "")}
    return [item for item in items if all(_text(item.get(key)) == value for key, value in wanted.items())]


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def expand_paths(params: Params) -> list[str]:
    return [str(path) for path in as_list(params, "expand")]
