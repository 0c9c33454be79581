"""Check JSON the double answers or sends against the ``stripe`` library's typed classes for the pinned version.

The library declares every field of every object as a class annotation: nested ``StripeObject`` classes for
sub-objects, ``Literal[...]`` for enums (``Union[Literal[...], str]`` where the library leaves room for values
a later API version may add), ``ExpandableField[X]`` (``Union[str, X]``) for an id that may be expanded into
the object, and ``Optional[...]`` for every field the API may send as null or leave out; a field declared
without it is one Stripe always sends, never null. ``shape_errors`` names every way a value departs from that.
"""

from __future__ import annotations

import ast
import inspect
import sys
import types
import typing
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, ClassVar, Literal, Union

# Imported once: the package's lazy attributes run an import on every access.
from stripe import ErrorObject, Event, ListObject, StripeObject

# Not exported: the map the library itself turns an "object" name into its class with, and metadata's type.
from stripe._object_classes import get_object_class
from stripe._stripe_object import UntypedStripeObject

LIST_FIELDS = {"object", "data", "has_more", "url"}
# Stripe sends ``total_count`` on the lists it embeds in an object (a subscription's items, an invoice's lines),
# though the library's ListObject does not declare it.
EMBEDDED_LIST_FIELDS = LIST_FIELDS | {"total_count"}


def shape_errors(value: Any, where: str) -> list[str]:
    """Every mismatch in an API answer, an error body or an event (whose ``data.object`` is checked by its type)."""
    problems: list[str] = []
    if isinstance(value, dict) and set(value) == {"error"}:
        _check(value["error"], ErrorObject, f"{where} error", problems)
    elif isinstance(value, dict) and value.get("object") == "list":
        _check_list(value, None, where, problems, embedded=False)
    else:
        _check_object(value, where, problems)
    return problems


def _check_object(value: Any, where: str, problems: list[str]) -> None:
    """An object checked by the class its own ``object`` names; an event's payload and its old values too."""
    if not isinstance(value, dict) or not isinstance(value.get("object"), str):
        problems.append(f"{where}: {_show(value)} is not a Stripe object")
        return
    cls = get_object_class("V1", value["object"])
    if cls is StripeObject:
        problems.append(f"{where}: the library knows no object {value['object']!r}")
        return
    _check_fields(value, cls, value["object"], problems)
    if cls is Event and isinstance(value.get("data"), dict):
        payload = value["data"].get("object")
        _check_object(payload, f"{where}.data.object", problems)
        previous = value["data"].get("previous_attributes")
        if isinstance(previous, dict) and isinstance(payload, dict) and isinstance(payload.get("object"), str):
            # The old values of what changed: some of the object's fields, null where a key was not there before.
            kind = get_object_class("V1", payload["object"])
            _check_fields(previous, kind, f"{payload['object']} previous_attributes", problems, partial=True)


def _check_fields(value: dict[str, Any], cls: type, where: str, problems: list[str], *, partial: bool = False) -> None:
    declared = fields(cls)
    for name, item in value.items():
        if name not in declared:
            problems.append(f"{where}.{name}: not a field of {_name(cls)}")
        else:
            _check(item, declared[name], f"{where}.{name}", problems, partial=partial)
    if not partial:
        for name, hint in declared.items():
            if name not in value and not _nullable(hint):
                problems.append(f"{where}.{name}: missing, where {_name(cls)} always has it")


def _check(value: Any, hint: Any, where: str, problems: list[str], *, partial: bool = False) -> None:
    if hint is Any:
        return
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        _check_union(value, args, where, problems, partial=partial)
    elif value is None:
        problems.append(f"{where}: null, where the library declares {_describe(hint)}")
    elif origin is Literal:
        if value not in args:
            problems.append(f"{where}: {_show(value)} is not one of {_choices(args)}")
    elif origin is list:
        if not isinstance(value, list):
            problems.append(f"{where}: {_show(value)}, where the library declares a list")
            return
        for index, item in enumerate(value):
            _check(item, args[0], f"{where}[{index}]", problems, partial=partial)
    elif origin in (dict, Mapping) or _is_class(origin, UntypedStripeObject):
        # Dict[str, X] or UntypedStripeObject[X] (metadata and the like): free keys, typed values.
        if not isinstance(value, dict):
            problems.append(f"{where}: {_show(value)}, where the library declares a hash")
            return
        for key, item in value.items():
            if not (partial and item is None):  # a key added since: it had no old value
                _check(item, args[-1], f"{where}.{key}", problems, partial=partial)
    elif _is_class(origin or hint, ListObject):
        _check_list(value, args[0] if args else None, where, problems, embedded=True)
    elif _is_class(hint, StripeObject):
        if not isinstance(value, dict):
            problems.append(f"{where}: {_show(value)}, where the library declares {_name(hint)}")
        elif getattr(hint, "OBJECT_NAME", None) and not partial:  # an object inside another, expanded
            if value.get("object") != hint.OBJECT_NAME:
                problems.append(f"{where}.object: {_show(value.get('object'))}, where {_name(hint)} is expected")
            _check_fields(value, hint, hint.OBJECT_NAME, problems)
        else:
            _check_fields(value, hint, where, problems, partial=partial)
    elif hint is Decimal:  # sent as a decimal string ("2900", "1965.5")
        if not (isinstance(value, str) and _is_decimal(value)):
            problems.append(f"{where}: {_show(value)}, where the library declares a decimal string")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{where}: {_show(value)}, where the library declares a number")
    elif hint in (str, int, bool):
        if type(value) is not hint:
            problems.append(f"{where}: {_show(value)}, where the library declares {hint.__name__}")
    else:
        problems.append(f"{where}: the checker cannot read the declared type {hint!r}")


def _check_union(value: Any, args: tuple[Any, ...], where: str, problems: list[str], *, partial: bool) -> None:
    members = [arg for arg in args if arg is not type(None)]
    if value is None:
        if len(members) == len(args):
            problems.append(f"{where}: null, where the library declares {' | '.join(map(_describe, args))}")
        return
    enum = [choice for member in members if typing.get_origin(member) is Literal for choice in typing.get_args(member)]
    if enum:  # Union[Literal[...], str]: the str is for values of later API versions, not this one's
        if value not in enum:
            problems.append(f"{where}: {_show(value)} is not one of {_choices(enum)}")
        return
    if str in members and isinstance(value, str):
        return  # ExpandableField: the id of an object that was not expanded
    objects = [member for member in members if member is not str]
    if len(objects) == 1:
        _check(value, objects[0], where, problems, partial=partial)
        return
    named = [member for member in objects if getattr(member, "OBJECT_NAME", None)]
    if named and isinstance(value, dict):  # one of several resources: the value says which
        chosen = [member for member in named if value.get("object") == member.OBJECT_NAME]
        if chosen:
            _check(value, chosen[0], where, problems, partial=partial)
        else:
            problems.append(f"{where}: {_show(value.get('object'))} is not one of {_choices(named)}")
        return
    attempts = []
    for member in objects:
        attempt: list[str] = []
        _check(value, member, where, attempt, partial=partial)
        if not attempt:
            return
        attempts.append(attempt)
    problems.extend(attempts[0] if attempts else [f"{where}: {_show(value)} fits no declared type"])


def _check_list(value: Any, item_hint: Any, where: str, problems: list[str], *, embedded: bool) -> None:
    """A list object; its items are checked by their own ``object`` (and must be of the declared class)."""
    if not isinstance(value, dict) or value.get("object") != "list":
        problems.append(f"{where}: {_show(value)}, where the library declares a list object")
        return
    for name in value.keys() - (EMBEDDED_LIST_FIELDS if embedded else LIST_FIELDS):
        problems.append(f"{where}.{name}: not a field of a list")
    for name in LIST_FIELDS - value.keys():
        problems.append(f"{where}.{name}: missing, where a list always has it")
    _check(value.get("has_more"), bool, f"{where}.has_more", problems)
    _check(value.get("url"), str, f"{where}.url", problems)
    if "total_count" in value:
        _check(value["total_count"], int, f"{where}.total_count", problems)
    if not isinstance(value.get("data"), list):
        return
    for index, item in enumerate(value["data"]):
        if item_hint is None:
            _check_object(item, f"{where}.data[{index}]", problems)
        else:
            _check(item, item_hint, f"{where}.data[{index}]", problems)


# --- what the library declares ---------------------------------------------------------------------------


@cache
def fields(cls: type) -> dict[str, Any]:
    """The fields ``cls`` declares (its own and inherited), by the name they have in JSON, with their types."""
    hints = typing.get_type_hints(cls, localns=_LazyImports(sys.modules[cls.__module__]))
    remapped = {attribute: name for name, attribute in getattr(cls, "_field_remappings", {}).items()}
    return {
        remapped.get(name, name): hint
        for name, hint in hints.items()
        if not name.startswith("_") and typing.get_origin(hint) is not ClassVar and hint is not ClassVar
    }


class _LazyImports(dict):
    """The names a library module imports only for type checkers (``if TYPE_CHECKING:``), imported when asked."""

    def __init__(self, module: types.ModuleType) -> None:
        super().__init__()
        self._imports = _type_checking_imports(module)

    def __missing__(self, name: str) -> Any:
        if name not in self._imports:
            raise KeyError(name)
        module, attribute = self._imports[name]
        self[name] = value = getattr(__import__(module, fromlist=[attribute]), attribute)
        return value


@cache
def _type_checking_imports(module: types.ModuleType) -> dict[str, tuple[str, str]]:
    found = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    for alias in statement.names:
                        found[alias.asname or alias.name] = (statement.module, alias.name)
    return found


def _nullable(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(hint)


def _is_class(value: Any, base: type) -> bool:
    return isinstance(value, type) and issubclass(value, base)


def _is_decimal(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


# --- messages ------------------------------------------------------------------------------------------------


def _name(cls: type) -> str:
    return cls.__qualname__ if cls.__module__.startswith("stripe") else repr(cls)


def _describe(hint: Any) -> str:
    if isinstance(hint, type):
        return _name(hint) if issubclass(hint, StripeObject) else hint.__name__
    return str(hint).replace("typing.", "").replace("stripe.", "")


def _choices(choices: Any, shown: int = 8) -> str:
    names = [repr(getattr(choice, "OBJECT_NAME", choice)) for choice in choices]
    return ", ".join(names[:shown]) + (f" (or {len(names) - shown} more)" if len(names) > shown else "")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
