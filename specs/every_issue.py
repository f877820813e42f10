"""Every problem of a spec in one pass (``stackform validate``), not only the first that stops loading.

Validation stops early in places: a section with an unknown key never reaches its cross-field rules,
and blocks are resolved only once the whole document has its shape. So after each failing pass the
keys at fault are taken out of a copy of the document, and it is validated again; new problems are
added (up to a few passes) until it validates or nothing new turns up. Positions stay those of the
file, since only keys at fault are removed (list items are never removed: indices keep their place).
"""

from __future__ import annotations

import copy
import typing
from typing import Any, Sequence

from pydantic import BaseModel, ValidationError

from stackform import registry

from .blocks import BlockSpec
from .errors import Issue, SpecError
from .load import load_spec, read_source, validate_source
from .models import Spec
from .overrides import apply_override, check_overrides
from .pydantic_errors import _options, issue_from_pydantic
from .source import Source

MAX_PASSES = 6


def _parts(dotted: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in dotted.split(".")] if dotted else []


def _remove(data: Any, path: list[Any]) -> bool:
    """Delete the deepest existing mapping key along ``path`` in ``data``; True if something was removed."""
    node, parent, key = data, None, None
    for part in path:
        if isinstance(node, dict) and part in node:
            parent, key, node = node, part, node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            parent, key, node = node, part, node[part]
        else:
            break
    if isinstance(parent, dict):
        del parent[key]
        return True
    return False


def _related(a: str, b: str) -> bool:
    """Whether two dotted paths are one place (one is the other, or inside it)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def every_issue(spec: Any, overrides: Sequence[str] = ()) -> tuple[Spec | None, list[Issue]]:
    """(the Spec, []) when ``spec`` with ``overrides`` is valid, else (None, every issue found, in file order).
    A problem with the file itself (YAML, ``extends:``, an override) is the only issue reported."""
    try:
        return load_spec(spec, overrides), []  # exactly what train gets when it is valid
    except SpecError as exc:
        first = list(exc.issues)
    check_overrides(overrides)
    try:
        if isinstance(spec, Spec):
            spec = spec.model_dump(mode="json")
        src = read_source(spec)
        for text in overrides:
            src = apply_override(src, text)
    except SpecError as exc:
        return None, list(exc.issues)
    data = copy.deepcopy(src.data)
    issues: list[Issue] = []
    for _ in range(MAX_PASSES):
        try:
            validate_source(Source(data, src.values, src.keys))
        except SpecError as exc:
            new = [i for i in exc.issues if not any(_related(i.path, seen.path) for seen in issues)]
            issues += new
            # an unknown key means nothing: without it the rest is checked as it stands (any other key
            # taken out would fall back to a default, and the next pass could blame that default)
            unknown = [i for i in new if i.message.startswith("unknown key ")]
            if not unknown or not isinstance(data, dict) or not any([_remove(data, _parts(i.path)) for i in unknown]):
                break
            continue
        return None, _in_order(first + issues)
    blocks = [i for i in _block_issues(src) if not any(_related(i.path, seen.path) for seen in issues)]
    return None, _in_order(first + issues + blocks)


def _raw_blocks(data: Any, cls: Any, path: tuple = ()):
    """(path, kind, raw value) of every block written in ``data``, found through the models' fields."""
    if not isinstance(data, dict):
        return
    for name, field in cls.model_fields.items():
        if name not in data or data[name] is None:
            continue
        raw, here = data[name], path + (name,)
        for option in _options(field.annotation):
            items = typing.get_args(option) if typing.get_origin(option) is list else ()
            inner = [o for arg in items for o in _options(arg)]
            if isinstance(option, type) and issubclass(option, BlockSpec):
                yield here, option.kind, raw
            elif inner and isinstance(raw, list):
                for i, item in enumerate(raw):
                    for sub in inner:
                        if isinstance(sub, type) and issubclass(sub, BlockSpec):
                            yield here + (i,), sub.kind, item
                        elif isinstance(sub, type) and issubclass(sub, BaseModel):
                            yield from _raw_blocks(item, sub, here + (i,))
            elif isinstance(option, type) and issubclass(option, BaseModel):
                yield from _raw_blocks(raw, option, here)


def _block_issues(src: Source) -> list[Issue]:
    """Each block's name and parameters checked on their own (when the spec around them did not validate)."""
    issues = []
    for path, kind, raw in _raw_blocks(src.data, Spec):
        name, params = (raw, {}) if isinstance(raw, str) else (raw.get("type"), {
            k: v for k, v in raw.items() if k != "type"}) if isinstance(raw, dict) else (None, None)
        if not isinstance(name, str):
            continue
        try:
            entry = registry.get(kind, name)
        except registry.RegistryError as exc:
            file, line, col = src.where(path + ("type",)) or ("<spec>", 0, 0)
            issues.append(Issue(file, line, col, ".".join(map(str, path + ("type",))), str(exc)))
            continue
        try:
            entry.params.model_validate(params)
        except ValidationError as exc:
            issues += [issue_from_pydantic(err, src, path, entry.params) for err in exc.errors()]
    return issues


def _in_order(issues: list[Issue]) -> list[Issue]:
    return sorted(dict.fromkeys(issues), key=lambda i: (i.file, i.line, i.col))
