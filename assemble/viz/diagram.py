"""``--diagram arch.svg``: the assembled architecture as a picture, drawn bottom-up like the
Transformer paper's figure 1: embeddings, positional encoding, each group of identical layers
(N x) with its sublayers, norms and residual connections, final norm, head; an encoder-decoder
shows both stacks side by side with the encoder output feeding every cross-attention.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from stackform.assemble.models import StackformModel

from .architecture import LayerGroupView, StackView, architecture
from .figure import new_figure, save_figure

COLORS = {"embedding": "#f7c6c7", "positional": "#d9f0d3", "self-attention": "#fcd9a8",
          "cross-attention": "#fdbf6f", "feed-forward": "#c7e3f7", "norm": "#f6f3a9", "head": "#dddddd"}
WIDTH, GAP, LINE, UNIT = 4.8, 0.32, 0.3, 0.42  # box width, gap, text line height (data units); inches per unit


class Column:
    """One stack drawn bottom-up at x = ``cx``; ``y`` is the top of what is drawn so far."""

    def __init__(self, ax, cx: float):
        self.ax, self.cx, self.y = ax, cx, 0.0
        self.out_y = 0.0  # the top of the stack's output (where the encoder's memory leaves)
        self.cross_inputs: list[tuple[float, float]] = []  # left-edge points of cross-attention boxes

    def text(self, text: str, dy: float = 0.5, **kw) -> None:
        self.ax.text(self.cx, self.y + dy / 2, text, ha="center", va="center", fontsize=8.5, **kw)
        self.y += dy

    def arrow(self, y0: float, y1: float, x: float | None = None) -> None:
        x = self.cx if x is None else x
        self.ax.annotate("", xy=(x, y1), xytext=(x, y0), arrowprops=dict(arrowstyle="-|>", lw=0.9, color="#444"))

    def box(self, text: str, color: str, width: float = WIDTH, link: bool = True,
            x: float | None = None) -> tuple[float, float]:
        """A rounded box above the current top (centred at ``x``, default the column's), joined by an
        arrow; returns its (bottom, top)."""
        from matplotlib.patches import FancyBboxPatch

        x = self.cx if x is None else x
        lines = textwrap.fill(text, max(8, int(30 * width / WIDTH))).splitlines()
        height = LINE * len(lines) + 0.22
        bottom = self.y + GAP
        if link:
            self.arrow(self.y, bottom, x)
        self.ax.add_patch(FancyBboxPatch((x - width / 2, bottom), width, height, fc=color, ec="#555",
                                         lw=0.8, boxstyle="round,pad=0,rounding_size=0.12"))
        self.ax.text(x, bottom + height / 2, "\n".join(lines), ha="center", va="center", fontsize=8.5)
        self.y = bottom + height
        return bottom, self.y

    def add(self) -> float:
        """A ⊕ circle above the current top; returns its centre's y."""
        from matplotlib.patches import Circle

        r = 0.17
        centre = self.y + GAP + r
        self.arrow(self.y, centre - r)
        self.ax.add_patch(Circle((self.cx, centre), r, fc="white", ec="#444", lw=0.9))
        self.ax.text(self.cx, centre, "+", ha="center", va="center", fontsize=10)
        self.y = centre + r
        return centre

    def skip(self, y_from: float, y_add: float) -> None:
        """The residual connection: from the stream at ``y_from`` around the sublayer into ⊕ at ``y_add``."""
        x_out = self.cx + WIDTH / 2 + 0.35
        self.ax.plot([self.cx, x_out, x_out], [y_from, y_from, y_add], color="#444", lw=0.9)
        self.ax.annotate("", xy=(self.cx + 0.17, y_add), xytext=(x_out, y_add),
                         arrowprops=dict(arrowstyle="-|>", lw=0.9, color="#444"))


def _title(role: str, label: str, masked: bool) -> str:
    title = "masked self-attention" if role == "self-attention" and masked else role
    return f"{title}: {label}"


def _main_box(col: Column, role: str, text: str, width: float = WIDTH, x: float | None = None) -> None:
    bottom, top = col.box(text, COLORS.get(role, COLORS["head"]), width, x=x)
    if role == "cross-attention":
        col.cross_inputs.append(((col.cx if x is None else x) - width / 2, (bottom + top) / 2))


def _sublayer(col: Column, role: str, label: str, norms_at: tuple[str, ...], norm: str, masked: bool) -> None:
    """One sublayer with its residual connection; its norms where its residual declares them
    (``norms_at``: before the sublayer, after it, after the add)."""
    split = col.y + GAP / 2
    col.arrow(col.y, split)
    col.y = split
    if "before" in norms_at:
        col.box(norm, COLORS["norm"])
    _main_box(col, role, _title(role, label, masked))
    if "after" in norms_at:
        col.box(norm, COLORS["norm"])
    col.skip(split, col.add())
    if "after_add" in norms_at:
        col.box(norm, COLORS["norm"])
    if not norms_at and norm != "-":
        col.text(f"(norm {norm}, placement not declared)", 0.4, style="italic")


def _parallel(col: Column, group: LayerGroupView, masked: bool) -> None:
    """Branches side by side on the same input (one shared norm, or one each), summed with the input."""
    split = col.y + GAP / 2
    col.arrow(col.y, split)
    col.y = split
    if group.shared_norm and group.norms:
        col.box(group.norms[0][1], COLORS["norm"])
    start, tops, n = col.y, [], len(group.sublayers)
    width = (WIDTH - 0.2 * (n - 1)) / max(n, 1)
    for k, ((role, label), (_, norm)) in enumerate(zip(group.sublayers, group.norms)):
        x = col.cx - WIDTH / 2 + width / 2 + k * (width + 0.2)
        col.y = start
        if not group.shared_norm:
            col.box(norm, COLORS["norm"], width, x=x)
        _main_box(col, role, _title(role, label, masked), width, x=x)
        tops.append((x, col.y))
    col.y = max(top for _, top in tops)
    for x, top in tops:
        col.ax.plot([x, x, col.cx], [top, col.y, col.y], color="#444", lw=0.9)
    col.skip(split, col.add())


def _group(col: Column, group: LayerGroupView, masked: bool) -> None:
    from matplotlib.patches import FancyBboxPatch

    start = col.y + GAP
    col.arrow(col.y, start)
    col.y = start
    if group.parallel:
        _parallel(col, group, masked)
    else:
        for (role, label), (norms_at, norm) in zip(group.sublayers, group.norms):
            _sublayer(col, role, label, norms_at, norm, masked)
    col.y += 0.15
    left = col.cx - WIDTH / 2 - 0.35
    col.ax.add_patch(FancyBboxPatch((left, start), WIDTH + 1.1, col.y - start, fc="#f4f4f4", ec="#888", lw=1.0,
                                    zorder=-1, boxstyle="round,pad=0,rounding_size=0.2"))
    last = group.first + group.count - 1
    span = f"layer {group.first}" if group.count == 1 else f"layers {group.first}-{last}"
    middle = (start + col.y) / 2
    col.ax.text(left - 0.15, middle + 0.15, f"{group.count}x", ha="right", va="bottom", fontsize=13,
                fontweight="bold")
    col.ax.text(left - 0.15, middle, span, ha="right", va="top", fontsize=7, color="#555")
    col.ax.text(left - 0.15, middle - 0.3, group.layer, ha="right", va="top", fontsize=7, color="#555")


def _positional(col: Column, view: StackView) -> None:
    if view.additive_positional:
        centre = col.add()
        x = col.cx - WIDTH / 2 - 0.6
        col.ax.text(x, centre, f"positional:\n{view.positional}", ha="right", va="center", fontsize=8.5,
                    bbox=dict(boxstyle="round", fc=COLORS["positional"], ec="#555", lw=0.8))
        col.ax.annotate("", xy=(col.cx - 0.17, centre), xytext=(x, centre),
                        arrowprops=dict(arrowstyle="-|>", lw=0.9, color="#444"))
    else:
        col.text(f"positional: {view.positional} (inside attention)", 0.5, style="italic",
                 bbox=dict(boxstyle="round", fc=COLORS["positional"], ec="#555", lw=0.8))


def draw_stack(col: Column, view: StackView, inputs: str) -> None:
    col.text(inputs, 0.4, style="italic")
    col.box(view.embedding, COLORS["embedding"])
    _positional(col, view)
    for group in view.groups:
        _group(col, group, view.hides_future)
    if view.final_norm is not None:
        col.box(f"final {view.final_norm}", COLORS["norm"])
    if view.head is not None:
        col.box(f"head: {view.head}", COLORS["head"])
        col.arrow(col.y, col.y + GAP)
        col.y += GAP
        col.text("logits", 0.4, style="italic")


def draw_architecture(model: StackformModel, path: str | os.PathLike) -> Path:
    """Draw ``model``'s architecture to an SVG, PNG or PDF file (by extension)."""
    views = architecture(model)
    centres = [4.2 + i * (WIDTH + 4.4) for i in range(len(views))]
    fig = new_figure(1, 1)
    ax = fig.add_axes((0, 0, 1, 1))
    columns = [Column(ax, cx) for cx in centres]
    for col, view in zip(columns, views):
        masks = ", ".join(view.masks) or "none"
        inputs = {"encoder": "source tokens" if len(views) > 1 else "tokens",
                  "decoder": "target tokens (shifted right)" if len(views) > 1 else "tokens"}[view.side]
        draw_stack(col, view, inputs)
        col.out_y = col.y
        col.y += 0.45 if view.side == "encoder" and len(views) > 1 else 0.0
        col.text(f"{view.side} (masks: {masks})", 0.5, fontweight="bold")
    if len(views) == 2:
        _cross_links(ax, columns[0], columns[1])
    top = max(col.y for col in columns) + 0.3
    right = centres[-1] + WIDTH / 2 + 1.0
    ax.set_xlim(0, right)
    ax.set_ylim(-0.2, top)
    ax.set_axis_off()
    fig.set_size_inches(right * UNIT, (top + 0.2) * UNIT)
    ax.set_title(f"{model.spec.name}: {model.spec.model.kind}, d_model {model.spec.model.d_model}, "
                 f"{model.spec.model.n_heads} heads", fontsize=10)
    return save_figure(fig, path)


def _cross_links(ax, encoder: Column, decoder: Column) -> None:
    """The encoder's output (memory) into every cross-attention box of the decoder."""
    memory_y = encoder.out_y + 0.3
    gap_x = (encoder.cx + WIDTH / 2 + decoder.cx - WIDTH / 2) / 2 - 0.3
    ax.text((encoder.cx + gap_x) / 2 + 0.6, memory_y + 0.05, "memory", ha="center", va="bottom", fontsize=8.5,
            style="italic", color="#c0392b")
    ax.plot([encoder.cx, encoder.cx, gap_x], [encoder.out_y, memory_y, memory_y], color="#c0392b", lw=1.1)
    for k, (x, y) in enumerate(decoder.cross_inputs):
        lane = gap_x + 0.25 * k
        ax.plot([gap_x, lane, lane], [memory_y, memory_y, y], color="#c0392b", lw=1.1)
        ax.annotate("", xy=(x, y), xytext=(lane, y), arrowprops=dict(arrowstyle="-|>", lw=1.1, color="#c0392b"))
