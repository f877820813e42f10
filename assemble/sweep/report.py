"""The sweep's table, in the terminal and as sweep.md: one row per variant, the mean and spread of the
final validation loss over seeds, the difference to the baseline with a paired t-test, tokens/s and
parameters; sorted by file order, loss or an axis, optionally grouped by an axis."""

from __future__ import annotations

import math
import shlex
from pathlib import Path

from stackform.assemble.checkpoint import atomic_write
from stackform.assemble.train.device import TrainingError
from stackform.specs.sweep import Sweep, short_keys, show

from .results import SweepResults, VariantResult

ALPHA = 0.05


def verdict(variant: VariantResult, is_baseline: bool) -> str:
    if is_baseline:
        return "baseline"
    test = variant.test
    if test is None or test.p is None:
        return "n/a (1 seed)" if variant.paired_seeds == 1 else "n/a (no paired seeds)" \
            if variant.paired_seeds == 0 else "n/a (diverged)"
    if test.p >= ALPHA:
        return "within noise"
    return "better" if test.diff < 0 else "worse"


def _num(x: float, fmt: str) -> str:
    return format(x, fmt) if x is not None and math.isfinite(x) else "—"


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def axis_key(sweep: Sweep, name: str) -> str:
    """The axis (dotted key) named by ``name``: its full key or the short name in the table."""
    keys = list(sweep.variants[0].axes)
    short = short_keys(keys)
    for key in keys:
        if name in (key, short[key]):
            return key
    raise TrainingError(f"'{name}' is not an axis of this sweep (axes: {', '.join(short[k] for k in keys)})")


def sorted_variants(results: SweepResults, sort: str = "file") -> list[VariantResult]:
    variants = list(results.variants)
    if sort == "file":
        return variants
    if sort == "loss":
        return sorted(variants, key=lambda v: (not math.isfinite(v.mean), v.mean if math.isfinite(v.mean) else 0))
    key = axis_key(results.plan.sweep, sort)
    order = _value_order(results, key)
    return sorted(variants, key=lambda v: order.index(show(v.axes[key])))


def _value_order(results: SweepResults, key: str) -> list[str]:
    order: list[str] = []
    for variant in results.plan.sweep.variants:
        if show(variant.axes[key]) not in order:
            order.append(show(variant.axes[key]))
    return order


def rows(results: SweepResults, variants: list[VariantResult]) -> tuple[list[str], list[list[str]]]:
    keys = list(results.plan.sweep.variants[0].axes)
    short = short_keys(keys)
    header = [*(short[k] for k in keys), "seeds", "val loss (mean ± sd)", "Δ vs baseline", "p", "verdict",
              "tokens/s", "params"]
    table = []
    for v in variants:
        base = v.index == results.baseline
        diff = "—" if base or v.test is None else _num(v.test.diff, "+.4f")
        p = "—" if base or v.test is None else _p(v.test.p)
        loss = f"{_num(v.mean, '.4f')} ± {_num(v.spread, '.4f')}" if v.runs else "—"
        table.append([*(show(v.axes[k]) for k in keys), str(len(v.runs)), loss, diff, p, verdict(v, base),
                      _num(v.tokens_per_s, ",.0f"), f"{v.params:,}"])
    return header, table


def _groups(results: SweepResults, sort: str, group: str | None) -> list[tuple[str, list[VariantResult]]]:
    ordered = sorted_variants(results, sort)
    if group is None:
        return [("", ordered)]
    key = axis_key(results.plan.sweep, group)
    return [(f"{key} = {value}", [v for v in ordered if show(v.axes[key]) == value])
            for value in _value_order(results, key)]


def text_table(header: list[str], table: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    right = {i for i, h in enumerate(header) if h in ("seeds", "tokens/s", "params", "Δ vs baseline", "p")}
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in [header, *table]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], table: list[list[str]]) -> str:
    right = {i for i, h in enumerate(header) if h in ("seeds", "tokens/s", "params", "Δ vs baseline", "p")}
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    return "\n".join(lines)


def _budget(results: SweepResults) -> str:
    budget = results.plan.sweep.file.budget
    if budget is None:
        return "the base spec's own steps / time"
    kind = budget.kind
    value = getattr(budget, kind)
    text = f"{value:,} {kind}" if kind in ("tokens", "steps") else f"{value:.3g} {kind}"
    steps = sorted({r.spec.train.steps for r in results.plan.runs})
    if kind in ("tokens", "flops", "steps"):
        text += f" (train.steps={', '.join(map(str, steps))})"
    return text


def summary_lines(results: SweepResults) -> list[str]:
    sweep = results.plan.sweep
    base = next(v for v in results.variants if v.index == results.baseline)
    return [
        f"base {sweep.base_ref}; {len(sweep.variants)} variants x {len(sweep.seeds)} seeds "
        f"({', '.join(map(str, sweep.seeds))}); budget: {_budget(results)}"
        + ("; match: params" if sweep.file.match else ""),
        f"baseline: {base.label}. Δ: mean over seeds of (variant - baseline) final validation loss at the same seed; "
        f"p: two-sided paired t-test over those seeds; 'within noise' when p >= {ALPHA}.",
    ]


def notes(results: SweepResults) -> list[str]:
    out = list(results.plan.notes)
    if results.missing:
        partial = sum(status == "partial" for _, status in results.missing)
        out.append(f"{len(results.missing)} of {len(results.plan.runs)} runs not finished ({partial} half-done), "
                   "left out: " + ", ".join(run.name for run, _ in results.missing))
    return out


def terminal_report(results: SweepResults, sort: str = "file", group: str | None = None) -> str:
    parts = [f"sweep {results.plan.sweep.name}", *summary_lines(results), ""]
    for title, variants in _groups(results, sort, group):
        if title:
            parts.append(title)
        parts += [text_table(*rows(results, variants)), ""]
    parts += [f"note: {n}" for n in notes(results)]
    return "\n".join(parts).rstrip()


def markdown_report(results: SweepResults, sort: str = "file", group: str | None = None,
                    picture: str | None = "sweep.png") -> str:
    sweep = results.plan.sweep
    parts = [f"# Sweep {sweep.name}", ""]
    if sweep.file.description:
        parts += [sweep.file.description.strip(), ""]
    command = shlex.join(["stackform", "sweep", sweep.given or str(sweep.path), *sweep.overrides])
    parts += [f"`{command}`", "", *(f"{line}  " for line in summary_lines(results)), ""]
    for title, variants in _groups(results, sort, group):
        if title:
            parts += [f"## {title}", ""]
        parts += [markdown_table(*rows(results, variants)), ""]
    if picture:
        parts += [f"![validation curves and final losses]({picture})", ""]
    parts += [f"- {n}" for n in notes(results)]
    return "\n".join(parts).rstrip() + "\n"


def write_markdown(results: SweepResults, path: Path, **kwargs) -> Path:
    atomic_write(path, markdown_report(results, **kwargs).encode())
    return path
