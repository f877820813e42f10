"""Choosing which attention kind, layer and head to show, with range checks."""

from __future__ import annotations

from .attention import TITLES, AttentionMap
from .errors import VizError


def _index(value: int | None, count: int, flag: str, title: str, what: str) -> list[int]:
    if value is None:
        return list(range(count))
    if not 0 <= value < count:
        raise VizError(f"{flag} {value}: out of range; the {title} has {count} {what} (0..{count - 1})")
    return [value]


def select(maps: list[AttentionMap], kind: str | None = None, layer: int | None = None,
           head: int | None = None) -> list[tuple[AttentionMap, list[int], list[int]]]:
    """(map, layers, heads) to draw: every kind, layer and head unless one is chosen."""
    if kind is not None:
        found = [m for m in maps if m.kind == kind]
        if not found:
            have = ", ".join(m.kind for m in maps)
            known = kind in TITLES
            raise VizError(f"--kind {kind}: {'this model has no such attention' if known else 'unknown kind'}"
                           f" (it has: {have})")
        maps = found
    out = []
    for m in maps:
        layers = _index(layer, m.n_layers, "--layer", m.title, "layers")
        heads = _index(head, m.n_heads, "--head", m.title, "heads")
        out.append((m, layers, heads))
    return out
