"""Dotted overrides (``model.d_model=256``) applied to the raw YAML before validation."""

from __future__ import annotations

import copy

from .errors import SpecError
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


def _set(src: Source, parts: list, value: object, label: str, col: int) -> Source:
    data = copy.deepcopy(src.data) if src.data is not None else {}
    if not isinstance(data, dict):
        raise SpecError.at(label, "the spec is not a mapping", 1, 1)
    node = data
    for depth, part in enumerate(parts[:-1]):
        here = ".".join(map(str, parts[: depth + 1]))
        nxt = parts[depth + 1]
        if isinstance(node, list):
            if not isinstance(part, int) or not -len(node) <= part < len(node):
                raise SpecError.at(label, f"no item {part} in a list of {len(node)}", 1, 1, here)
            child = node[part]
        elif isinstance(node, dict):
            child = node.get(str(part))
            if child is None:
                child = node[str(part)] = [] if isinstance(nxt, int) else {}
            elif isinstance(child, str) and not isinstance(nxt, int):
                child = node[str(part)] = {"type": child}  # a block given by name: open it up
        else:
            raise SpecError.at(label, f"cannot set a key inside a {type(node).__name__}", 1, 1, here)
        node = child
        if not isinstance(node, (dict, list)):
            raise SpecError.at(label, f"'{here}' is {node!r}, not a mapping or list", 1, 1, here)
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
    values[path] = (label, 1, col)
    keys[path] = (label, 1, 1)
    return Source(data, values, keys)
