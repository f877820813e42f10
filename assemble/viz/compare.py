"""``stackform compare``: the loss curves of runs overlaid, their spec differences in the legend."""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

from .errors import VizError
from .figure import new_figure, save_figure
from .runs import Run, format_differences, spec_differences

X_AXES = {"step": ("step", "step"), "time": ("elapsed_s", "elapsed time (s)")}


def legend_labels(runs: list[Run], width: int = 70) -> list[str]:
    """One label per run: its folder name and what its spec changes against the others."""
    diffs = spec_differences([r.spec for r in runs]) if len(runs) > 1 else [{} for _ in runs]
    labels = []
    for run, diff in zip(runs, diffs):
        text = format_differences(diff) or ("same spec" if len(runs) > 1 else run.spec.name)
        labels.append(textwrap.fill(f"{run.name}: {text}", width, subsequent_indent="    "))
    return labels


def plot_runs(runs: list[Run], path: str | os.PathLike, *, x: str = "step", log_y: bool = False,
              title: str = "") -> Path:
    """Train (solid) and validation (dashed, dots) loss of each run, one colour per run."""
    from matplotlib.lines import Line2D

    if not runs:
        raise VizError("compare: no runs given")
    key, x_label = X_AXES[x]
    if not any(run.curve(split, key)[0] for run in runs for split in ("train", "val")):
        raise VizError(f"compare: no run has loss records with '{key}' in its metrics.jsonl")
    labels = legend_labels(runs)
    n_lines = sum(label.count("\n") + 1 for label in labels)
    legend_inches = 0.17 * n_lines + 0.2
    height = 4.2 + legend_inches
    fig = new_figure(9.0, height)
    bottom = (legend_inches + 0.55) / height  # room for the run legend and the x label
    ax = fig.add_axes((0.08, bottom, 0.9, 1 - bottom - 0.4 / height))
    handles = []
    for i, (run, label) in enumerate(zip(runs, labels)):
        color = f"C{i % 10}"
        xs, ys = run.curve("train", key)
        ax.plot(xs, ys, color=color, lw=1.2, alpha=0.85)
        alone = isolated_points(xs, ys)  # a line through one point draws nothing: a short run, or between gaps
        ax.plot([xs[i] for i in alone], [ys[i] for i in alone], color=color, ls="none", marker="s", ms=3.5)
        xs, ys = run.curve("val", key)
        ax.plot(xs, ys, color=color, lw=1.2, ls="--", marker="o", ms=3.5)
        handles.append(Line2D([], [], color=color, lw=2, label=label))
    ax.set(xlabel=x_label, ylabel="loss (nats/token)", title=title or "loss curves")
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    styles = [Line2D([], [], color="#444", lw=1.2, label="train"),
              Line2D([], [], color="#444", lw=1.2, ls="--", marker="o", ms=3.5, label="validation")]
    ax.add_artist(ax.legend(handles=styles, loc="best", fontsize=8))  # where it covers no point of a curve
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.03, 0.0), frameon=False,
               prop={"family": "monospace", "size": 8})
    return save_figure(fig, path)


def isolated_points(xs: list[float], ys: list[float]) -> list[int]:
    """Indices of the finite values with no finite neighbour on either side: a line draws nothing there."""
    finite = [math.isfinite(y) for y in ys]
    return [i for i, ok in enumerate(finite)
            if ok and not (i > 0 and finite[i - 1]) and not (i + 1 < len(ys) and finite[i + 1])]


def _short(value: object) -> str:
    """A task name, or a tokenizer as ``bytes``, ``bpe 512``, ``file tokenizer.json``."""
    if isinstance(value, str):
        return value
    detail = getattr(value, "vocab_size", None) or getattr(value, "path", None)
    return f"{value.type} {detail}" if detail else str(value.type)


def not_comparable(runs: list[Run]) -> str | None:
    """Why the runs' losses cannot be read on one axis (they differ in task or tokenizer), or None."""
    for key, what in (("task", "tasks"), ("tokenizer", "tokenizers")):
        values = [_short(getattr(run.spec.train, key)) for run in runs]
        if len(set(values)) > 1:
            each = ", ".join(f"{run.name}: {value}" for run, value in zip(runs, values))
            return (f"note: these losses are not comparable: the runs have different {what} ({each}), "
                    "so each loss is per target token of a different prediction")
    return None


def summary_rows(runs: list[Run]) -> list[tuple[str, str, str, str]]:
    """(run, steps, last train loss, best validation loss) per run, formatted; a run whose
    validation losses are all NaN (diverged, or nothing to score) shows "—"."""
    rows = []
    for run in runs:
        steps, train = run.curve("train")
        _, val = run.curve("val")
        finite = [v for v in val if math.isfinite(v)]
        rows.append((run.name, str(int(max(steps))) if steps else "-", f"{train[-1]:.4f}" if train else "-",
                     f"{min(finite):.4f}" if finite else "—" if val else "-"))
    return rows
