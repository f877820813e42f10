"""A grid of attention heatmaps (layers x heads) with the tokens as axis labels."""

from __future__ import annotations

import math
import os
from pathlib import Path

from .attention import AttentionMap
from .figure import new_figure, save_figure
from .select import select


def _panel_inches(n_tokens: int, single: bool) -> float:
    per_token = 0.2 if single else 0.11
    low, high = (3.0, 11.0) if single else (1.5, 4.0)
    return min(max(n_tokens * per_token, low), high)


def _ticks(ax, labels: list[str], axis: str, inches: float) -> None:
    """Token labels on one axis: every label if they fit, else every k-th."""
    n = len(labels)
    room = inches * 72 / max(n, 1)  # points per token
    size = min(9.0, 0.8 * room)
    step = max(1, math.ceil(4.5 / size)) if size < 4.5 else 1
    positions = list(range(0, n, step))
    shown = [labels[i] for i in positions]
    if axis == "x":
        ax.set_xticks(positions, shown, rotation=90, fontsize=max(size, 4.5), fontfamily="monospace")
    else:
        ax.set_yticks(positions, shown, fontsize=max(size, 4.5), fontfamily="monospace")


def plot_attention(maps: list[AttentionMap], path: str | os.PathLike, *, kind: str | None = None,
                   layer: int | None = None, head: int | None = None, title: str = "") -> Path:
    """Draw the chosen maps (each kind a section of layers x heads panels) to a PNG/SVG/PDF file."""
    from matplotlib.colors import PowerNorm

    chosen = select(maps, kind, layer, head)
    single = sum(len(ls) * len(hs) for _, ls, hs in chosen) == 1
    sizes = []
    for m, layers, heads in chosen:
        n = max(len(m.queries), len(m.keys))
        base = _panel_inches(n, single)
        sizes.append((base * len(m.keys) / n, base * len(m.queries) / n))
    width = max(len(hs) * (w + 0.35) for (_, _, hs), (w, _) in zip(chosen, sizes)) + 1.6
    heights = [len(ls) * (h + 0.3) + 0.7 for (_, ls, _), (_, h) in zip(chosen, sizes)]
    fig = new_figure(width, sum(heights) + (0.4 if title else 0), layout="constrained")
    if title:
        fig.suptitle(title, fontsize=11)
    sections = fig.subfigures(len(chosen), 1, height_ratios=heights, squeeze=False)[:, 0]
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    for section, (m, layers, heads), (w, h) in zip(sections, chosen, sizes):
        axes = section.subplots(len(layers), len(heads), squeeze=False)
        section.suptitle(f"{m.title} ({m.n_layers} layers x {m.n_heads} heads; rows: queries, columns: keys)",
                         fontsize=10)
        for r, li in enumerate(layers):
            for c, hi in enumerate(heads):
                ax = axes[r, c]
                image = ax.imshow(m.weights[li, hi].numpy(), cmap="viridis", norm=norm, aspect="equal",
                                  interpolation="nearest")
                ax.set_title(f"layer {li} head {hi}", fontsize=8, pad=3)
                _ticks(ax, m.keys, "x", w) if r == len(layers) - 1 else ax.set_xticks([])
                _ticks(ax, m.queries, "y", h) if c == 0 else ax.set_yticks([])
                ax.tick_params(length=0, pad=1)
        section.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6 if len(layers) > 1 else 0.9,
                         fraction=0.04, aspect=25, label="weight (sqrt scale)")
    return save_figure(fig, path)
