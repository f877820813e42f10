"""Turning one pydantic error into one ``file:line:col: path: message`` Issue."""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel

from stackform.registry import closest

from .errors import Issue
from .source import Source

_MISSING = object()


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict) and isinstance(part, str) and part in node:
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
        return node[part]
    return _MISSING


def _options(annotation: Any) -> list[Any]:
    """The concrete types an annotation allows (Annotated, Optional, Union unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _options(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _options(arg) if t is not type(None)]
    return [annotation]


def _other_type(option: type[BaseModel], raw: Any) -> bool:
    """Whether ``raw`` names a ``type:`` this union member does not take (its Literal's values)."""
    literal = option.model_fields.get("type")
    if literal is None or not isinstance(raw, dict) or raw.get("type") is None:
        return False
    return raw["type"] not in (typing.get_args(literal.annotation) or (literal.default,))


def _pick(annotation: Any, raw: Any, part: Any) -> Any:
    """The type found one step down ``annotation`` at ``part`` for the raw value."""
    for option in _options(annotation):
        origin = typing.get_origin(option)
        if origin in (list, tuple) and isinstance(part, int):
            args = typing.get_args(option)
            return args[0] if args else None
        if isinstance(option, type) and issubclass(option, BaseModel) and isinstance(part, str):
            field = option.model_fields.get(part)
            if field is None:
                continue
            if _other_type(option, raw):
                continue
            return field.annotation
    return None


def _clean(loc: tuple, raw: Any, cls: type) -> tuple[tuple, Any, Any]:
    """Drop pydantic's union tags and validator names from ``loc``; follow raw data and types."""
    path: list = []
    node, annotation = raw, cls
    for i, part in enumerate(loc):
        child = _child(node, part)
        last = i == len(loc) - 1
        if child is _MISSING and not last:
            if isinstance(part, str) and (
                "[" in part or part[:1].isupper() or (isinstance(node, dict) and node.get("type") == part)
            ):
                continue  # a union member or validator name, not a key
        annotation_next = _pick(annotation, node, part) if annotation is not None else None
        path.append(part)
        if not last:
            node, annotation = child, annotation_next
    return tuple(path), node, annotation


def _allowed_keys(annotation: Any, raw: Any) -> list[str]:
    for option in _options(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            if _other_type(option, raw):
                continue
            return list(option.model_fields)
    return []


def _fixed_length(annotation: Any) -> int | None:
    """The item count a fixed-length tuple annotation (``tuple[float, float]``) requires, else None."""
    for option in _options(annotation):
        args = typing.get_args(option)
        if typing.get_origin(option) is tuple and args and Ellipsis not in args:
            return len(args)
    return None


def _count_message(kind: str, err: dict, annotation: Any) -> str:
    """``needs 2 items, got 1`` for a list or tuple of the wrong length."""
    raw = err.get("input")
    got = len(raw) if isinstance(raw, (list, tuple)) else err.get("ctx", {}).get("actual_length", "?")
    needed = _fixed_length(annotation)
    if needed is not None:
        return f"needs {needed} item{'s' if needed != 1 else ''}, got {got}"
    ctx = err.get("ctx", {})
    if kind == "too_long":
        return f"needs at most {ctx.get('max_length')} items, got {got}"
    return f"needs at least {ctx.get('min_length')} items, got {got}"


def _field_paths(cls: Any, prefix: tuple = (), depth: int = 3) -> list[tuple]:
    """Every field path below the model ``cls`` (through nested models, not lists), up to ``depth``."""
    found = []
    for option in _options(cls):
        if not (isinstance(option, type) and issubclass(option, BaseModel)) or depth == 0:
            continue
        for name, field in option.model_fields.items():
            found.append(prefix + (name,))
            found += _field_paths(field.annotation, prefix + (name,), depth - 1)
    return found


def _elsewhere(cls: Any, name: str, parent: tuple) -> str | None:
    """The full path of a field called ``name`` at another level (``train.lr``: ``train.optimizer.lr``),
    below the unknown key's parent first; None when there is none (or the document is not a whole spec)."""
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or "model" not in cls.model_fields:
        return None
    named = [p for p in _field_paths(cls) if p[-1] == name]
    if any(p[:-1] == parent for p in named):  # a key of another variant of this place (another data type)
        return None
    paths = [p for p in named if len(p) >= 2]  # a section's key, never a top-level one (name, plugins)
    if not paths:
        return None
    below = [p for p in paths if p[: len(parent)] == parent]
    best = min(below or paths, key=len)
    return ".".join(map(str, best))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def issue_from_pydantic(err: dict, src: Source, prefix: tuple, cls: type) -> Issue:
    """One Issue for one entry of ``ValidationError.errors()`` at ``prefix`` of ``src``."""
    raw = src.data
    for part in prefix:
        raw = _child(raw, part)
    loc, parent_raw, parent_type = _clean(tuple(err["loc"]), raw, cls)
    kind, message = err["type"], err["msg"]
    key = False
    if kind == "extra_forbidden":
        key = True
        name = str(loc[-1]) if loc else "?"
        allowed = [k for k in _allowed_keys(parent_type, parent_raw) if k != "type" or prefix == ()]
        guess = closest(name, allowed) or _elsewhere(cls, name, prefix + loc[:-1])
        hint = f"; did you mean '{guess}'?" if guess else ""
        message = f"unknown key '{name}'{hint} (allowed: {', '.join(allowed)})"
    elif kind == "missing" and loc and isinstance(loc[-1], int) and isinstance(parent_raw, list):
        loc = loc[:-1]  # an item a fixed-length tuple lacks: the list is too short, not a key missing
        message = _count_message(kind, {**err, "input": parent_raw}, parent_type)
    elif kind in ("too_long", "too_short"):
        message = _count_message(kind, err, _pick(parent_type, parent_raw, loc[-1]) if loc else parent_type)
    elif kind == "missing":
        message = f"required key '{loc[-1]}' is missing" if loc else "a required key is missing"
    elif kind in ("literal_error", "enum"):
        expected = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        guess = closest(str(err.get("input")), expected) if expected else None
        hint = f"; did you mean '{guess}'?" if guess else ""
        message = f"{_short(err.get('input'))} is not one of {', '.join(expected)}{hint}"
    elif kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        guess = closest(str(ctx.get("tag")), expected)
        hint = f"; did you mean '{guess}'?" if guess else ""
        loc = loc + ("type",)
        message = f"unknown type '{ctx.get('tag')}'{hint} (one of: {', '.join(expected)})"
    elif kind == "value_error":
        message = message.removeprefix("Value error, ")
        match = re.match(r"@([^@]+)@ (.*)", message, re.S)
        if match:
            loc = loc + tuple(int(p) if p.isdigit() else p for p in match.group(1).split("."))
            message = match.group(2)
    elif not isinstance(err.get("input"), (dict, list)):
        message = f"{message} (got {_short(err.get('input'))})"
    full = prefix + loc
    file, line, col = src.where(full, key=key) or ("<spec>", 0, 0)
    return Issue(file, line, col, ".".join(map(str, full)), message.replace("\n", " "))
