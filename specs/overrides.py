"""Dotted overrides (``model.d_model=256``) applied to the raw YAML before validation."""

from __future__ import annotations

import copy

from .blocks import BlockSpec
from .errors import SpecError
from .models import Spec
from .pydantic_errors import _options, _pick
from .source import Source, path_part, scalar


def _parse(text: str) -> tuple[list, object, int]:
    label = f"override '{text}'"
    if "=" not in text:
        raise SpecError.at(label, "an override is KEY.PATH=VALUE, e.g. model.d_model=256", 1, 1)
    key, _, value_text = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise SpecError.at(label, f"'{key}' is not a dotted path like model.d_model", 1, 1)
    try:
        value = scalar(value_text, label)
    except SpecError as exc:  # a YAML error in the value
        problem = exc.issues[0].message.removeprefix("YAML syntax error: ")
        raise SpecError.at(label, f"bad value '{value_text}': {problem}", 1, len(key) + 2, key) from None
    parts: list = [path_part(p) for p in key.split(".")]
    return parts, value, len(key) + 2


def check_overrides(overrides: object) -> None:
    """SpecError unless ``overrides`` is a list (or tuple) of strings: a bare str would be read letter by letter."""
    if isinstance(overrides, str) or not all(isinstance(text, str) for text in overrides):
        what = repr(overrides) if isinstance(overrides, str) else "a list holding a non-str"
        raise SpecError.at("<overrides>", f"overrides must be a list of KEY.PATH=VALUE strings, got {what}")


def apply_override(src: Source, text: str) -> Source:
    """Return a new Source with one ``a.b.c=value`` override applied."""
    parts, value, col = _parse(text)
    return _set(src, parts, value, f"override '{text}'", col)


def apply_value(src: Source, dotted: str, value: object) -> Source:
    """Set ``dotted`` (``model.d_model``) to a Python value, like an override."""
    parts: list = [path_part(p) for p in dotted.split(".")]
    return _set(src, parts, value, f"argument {dotted}={value!r}", len(dotted) + 2)


def _is_block(annotation: object) -> bool:
    """Whether a spec field of this type holds a block (so a bare name may be opened into ``{type: NAME}``)."""
    return any(isinstance(t, type) and issubclass(t, BlockSpec) for t in _options(annotation))


def _scalar_word(value: object) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return f"{value!r}, a {type(value).__name__}"


def _no_inside(label: str, here: str, value: object, nxt: object) -> SpecError:
    has = "items" if isinstance(nxt, int) else "keys"
    problem = f"'{here}' is {_scalar_word(value)}, which has no {has}: cannot set '{here}.{nxt}'"
    return SpecError.at(label, problem, 1, 1, here)


def _set(src: Source, parts: list, value: object, label: str, col: int) -> Source:
    data = copy.deepcopy(src.data) if src.data is not None else {}
    if not isinstance(data, dict):
        raise SpecError.at(label, "the spec is not a mapping", 1, 1)
    node: object = data
    annotation: object = Spec  # the type at ``node``, followed down the path (None once unknown)
    created: list[tuple] = []
    for depth, part in enumerate(parts[:-1]):
        here = ".".join(map(str, parts[: depth + 1]))
        nxt = parts[depth + 1]
        annotation = _pick(annotation, node, part) if annotation is not None else None
        if isinstance(node, list):
            if not isinstance(part, int) or not -len(node) <= part < len(node):
                raise SpecError.at(label, f"no item {part} in a list of {len(node)}", 1, 1, here)
            child = node[part]
        else:  # a dict: only containers are walked into (checked below)
            child = node.get(str(part))
            if child is None:
                child = node[str(part)] = [] if isinstance(nxt, int) else {}
                created.append(tuple(parts[: depth + 1]))  # the override made it: errors in it point here
        opens = annotation is None or _is_block(annotation)  # None: a block's own params, or an unknown key
        if isinstance(child, str) and not isinstance(nxt, int) and opens:
            child = {"type": child}  # a block given by name: open it up
            node[part if isinstance(node, list) else str(part)] = child
        if not isinstance(child, (dict, list)):
            raise _no_inside(label, here, child, nxt)
        node = child
    last = parts[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or not -len(node) <= last < len(node):
            raise SpecError.at(label, f"no item {last} in a list of {len(node)}", 1, 1, ".".join(map(str, parts)))
        node[last] = value
    else:
        node[str(last)] = value
    path = tuple(str(p) if not isinstance(p, int) else p for p in parts)
    values = {p: pos for p, pos in src.values.items() if p[: len(path)] != path}
    keys = {p: pos for p, pos in src.keys.items() if p[: len(path)] != path}
    for made in created:
        values[made] = keys[made] = (label, 1, 1)
    values[path] = (label, 1, col)
    keys[path] = (label, 1, 1)
    return Source(data, values, keys)
