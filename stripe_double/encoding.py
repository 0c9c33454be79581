"""Stripe's form encoding: ``line_items[0][price]=…``, ``metadata[k]=v``, ``expand[]=…`` into nested values."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from .errors import invalid, missing

Params = dict[str, Any]


def decode(raw: str) -> Params:
    """Nest a form- or query-encoded string the way Stripe reads it.

    Lists may come indexed (``expand[0]``, what the Python library sends) or bare (``expand[]``).
    Numbered keys become lists everywhere except inside ``metadata``, whose keys are free text.
    """
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        node = root
        tokens = _tokens(key)
        for depth, token in enumerate(tokens):
            if token == "":
                token = str(len(node))
            if depth == len(tokens) - 1:
                node[token] = value
            else:
                child = node.setdefault(token, {})
                if not isinstance(child, dict):
                    raise invalid(f"Invalid value for {key}: it mixes a scalar and a hash.", param=key)
                node = child
    return _listify(root, parent="")


def _tokens(key: str) -> list[str]:
    head, bracket, rest = key.partition("[")
    tokens = [head]
    while bracket:
        segment, _, rest = rest.partition("]")
        tokens.append(segment)
        bracket = "[" if rest.startswith("[") else ""
        rest = rest[1:]
    return tokens


def _listify(value: Any, *, parent: str) -> Any:
    if not isinstance(value, dict):
        return value
    nested = {key: _listify(item, parent=key) for key, item in value.items()}
    if parent != "metadata" and nested and all(key.isdigit() for key in nested):
        return [nested[key] for key in sorted(nested, key=int)]
    return nested


def as_int(params: Params, name: str, *, required: bool = False, minimum: int | None = None) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        if required:
            raise missing(name)
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {value}", param=name) from None
    if minimum is not None and number < minimum:
        raise invalid(f"This value must be greater than or equal to {minimum}.", param=name)
    return number


def as_bool(params: Params, name: str) -> bool | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    if value in ("true", "false", True, False):
        return value in ("true", True)
    raise invalid(f"Invalid boolean: {value}", param=name)


def as_str(params: Params, name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value in (None, ""):
        if required:
            raise missing(name)
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {name} must be a string.", param=name)
    return value


def as_dict(params: Params, name: str) -> dict[str, Any]:
    value = params.get(name)
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise invalid(f"Invalid object: {name} must be a hash.", param=name)
    return value


def as_list(params: Params, name: str) -> list[Any]:
    value = params.get(name)
    if value in (None, ""):
        return []
    if isinstance(value, dict):  # metadata-style numbered keys never reach here; an empty list may
        return list(value.values())
    if not isinstance(value, list):
        return [value]
    return value


def assign(target: dict[str, Any], params: Params, *fields: str) -> None:
    """Copy the text ``fields`` present in ``params`` onto ``target`` ("" unsets one, as Stripe reads it)."""
    for name in fields:
        if name in params:
            target[name] = as_str(params, name)
    if "metadata" in params:
        target["metadata"] = merge_metadata(target["metadata"], params["metadata"])


def merge_metadata(current: dict[str, str], update: Any) -> dict[str, str]:
    """Apply a metadata update as Stripe does: keys set to "" are removed, ``metadata=""`` clears all."""
    if update == "":
        return {}
    if not isinstance(update, dict):
        raise invalid("Invalid metadata: must be a hash of keys to strings.", param="metadata")
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged
