"""sweep.png: validation curves per variant (mean over seeds, their range as a band) and a bar chart
of the final validation losses (mean, standard deviation as error bars), one colour per variant."""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

from stackform.assemble.viz.figure import new_figure, save_figure

from .results import SweepResults, VariantResult
from .stats import mean


def _band(variant: VariantResult) -> tuple[list[float], list[float], list[float], list[float]]:
    """(steps, mean, low, high) over the seeds, at the evaluation steps every seed has."""
    curves = [dict(zip(*r.val_curve)) for r in variant.runs]
    if not curves:
        return [], [], [], []
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    means, lows, highs = [], [], []
    for step in steps:
        values = [c[step] for c in curves]
        finite = [v for v in values if math.isfinite(v)]
        means.append(mean(finite) if len(finite) == len(values) else math.nan)
        lows.append(min(finite) if finite else math.nan)
        highs.append(max(finite) if finite else math.nan)
    return steps, means, lows, highs


def plot_sweep(results: SweepResults, path: str | os.PathLike, order: list[VariantResult] | None = None) -> Path:
    variants = order or results.variants
    colors = {v.index: f"C{i % 10}" for i, v in enumerate(results.variants)}
    labels = {v.index: textwrap.shorten(v.label, 48, placeholder="…") for v in results.variants}
    height = max(4.2, 0.32 * len(variants) + 1.6)
    fig = new_figure(12.5, height, layout="constrained")
    curves, bars = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    drawn = False
    for v in variants:
        steps, means, lows, highs = _band(v)
        if not steps:
            continue
        drawn = True
        color = colors[v.index]
        name = labels[v.index] + (" (baseline)" if v.index == results.baseline else "")
        curves.plot(steps, means, color=color, lw=1.6, marker="o", ms=2.5, label=f"{name}, {len(v.runs)} seeds")
        if len(v.runs) > 1:
            curves.fill_between(steps, lows, highs, color=color, alpha=0.18, lw=0)
    curves.set(xlabel="step", ylabel="validation loss (nats/token)",
               title="validation loss: mean over seeds, band = min..max")
    curves.grid(alpha=0.3)
    if drawn:
        curves.legend(fontsize=7.5, loc="best")
        _zoom(curves, variants)
    shown = [v for v in variants if v.runs and math.isfinite(v.mean)]
    ys = list(range(len(shown)))[::-1]  # the first row on top, as in the table
    means = [v.mean for v in shown]
    errors = [v.spread for v in shown]
    drawn_bars = bars.barh(ys, means, xerr=errors, color=[colors[v.index] for v in shown], alpha=0.85, capsize=3)
    for bar, v in zip(drawn_bars, shown):
        if v.index == results.baseline:
            bar.set_hatch("//")
    bars.set_yticks(ys, [labels[v.index] + (" *" if v.index == results.baseline else "") for v in shown], fontsize=8)
    if shown:
        low = min(m - e for m, e in zip(means, errors))
        high = max(m + e for m, e in zip(means, errors))
        pad = max(high - low, 1e-3) * 0.25
        bars.set_xlim(max(0.0, low - pad), high + pad)
        for y, m, e in zip(ys, means, errors):
            bars.text(m + e + pad * 0.08, y, f"{m:.3f}", va="center", fontsize=7.5)
    start = bars.get_xlim()[0]
    bars.set(xlabel="final validation loss" + (f" (axis starts at {start:.2f})" if start > 0 else ""),
             title="final validation loss: mean ± sd over seeds (* baseline)")
    bars.grid(axis="x", alpha=0.3)
    fig.suptitle(f"sweep {results.plan.sweep.name}", fontsize=11)
    return save_figure(fig, path)


def _zoom(ax, variants: list[VariantResult]) -> None:
    """Skip the first evaluations' high losses so that the differences at the end stay visible."""
    finals = [v.mean for v in variants if v.runs and math.isfinite(v.mean)]
    values = [x for v in variants for r in v.runs for x in r.val_curve[1] if math.isfinite(x)]
    if not finals or not values:
        return
    top = min(max(values), max(finals) + 3 * (max(finals) - min(finals) + 0.05))
    bottom = min(values)
    ax.set_ylim(bottom - 0.02 * (top - bottom), top)
