"""Per-layer blocks of one stack: runs of layers (``repeat``), then rules (``every`` / ``offset``).

``layers:`` is a list of groups. A group with ``repeat`` lays out that many consecutive layers; a
group with ``every`` is a rule: it lays out nothing and overrides the blocks it names in every layer
i with i % every == offset, after the runs are laid out (or the stack's n_layers default layers when
there are no runs). Rules apply in order, a later one winning where two set the same key. Gemma 3's
five local layers then one global one is one rule::

    attention: {type: gqa, n_kv_heads: 1, window: 512}       # every layer: local
    positional: {type: rope, theta: 10000.0}
    layers:
      - {every: 6, offset: 5, attention: {type: gqa, n_kv_heads: 1}, positional: {type: rope, theta: 1000000.0}}
"""

from __future__ import annotations

from typing import Any

BLOCK_KEYS = ("attention", "cross_attention", "ffn", "norm", "residual", "positional")


def is_rule(group: Any) -> bool:
    return getattr(group, "every", None) is not None


def expand(base: dict[str, Any], groups: list[Any], n_layers: int) -> list[dict[str, Any]]:
    """The blocks of every layer: ``base`` (the stack's), the runs' overrides, then the rules'."""
    runs = [g for g in groups if not is_rule(g)]
    layers: list[dict[str, Any]] = []
    if runs:
        for group in runs:
            blocks = {key: getattr(group, key) or value for key, value in base.items()}
            layers.extend(dict(blocks) for _ in range(group.repeat))
    else:
        layers = [dict(base) for _ in range(n_layers)]
    for group in groups:
        if is_rule(group):
            changes = {key: getattr(group, key) for key in base if getattr(group, key) is not None}
            for i in range(group.offset, len(layers), group.every):
                layers[i].update(changes)
    return layers


def runs_of(layers: list[Any]) -> list[tuple[Any, int]]:
    """(layer, repeat) runs of consecutive equal layers, each run holding one object."""
    out: list[tuple[Any, int]] = []
    for layer in layers:
        if out and out[-1][0] == layer:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((layer, 1))
    return out
