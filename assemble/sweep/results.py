"""Gathering a sweep's results from its run folders (their metrics.jsonl), however they were run:
by ``stackform sweep``, or by the ``stackform train`` commands of ``--plan`` on a cluster."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from stackform.assemble.viz.runs import read_metrics

from .execute import check_folder, run_status
from .plan import Plan, SweepRun
from .stats import PairedTest, mean, paired_t_test, stdev


@dataclass
class RunResult:
    run: SweepRun
    final_loss: float  # the last validation loss (the final evaluation), NaN when it diverged
    tokens_per_s: float
    val_curve: tuple[list[float], list[float]]  # (steps, validation losses)
    steps: int


@dataclass
class VariantResult:
    """One variant over its finished seeds, and its test against the baseline variant."""

    index: int
    label: str
    axes: dict
    params: int
    runs: list[RunResult] = field(default_factory=list)
    test: PairedTest | None = None  # None for the baseline itself
    paired_seeds: int = 0

    @property
    def losses(self) -> list[float]:
        return [r.final_loss for r in self.runs]

    @property
    def mean(self) -> float:
        finite = [x for x in self.losses if math.isfinite(x)]
        return mean(finite) if finite and len(finite) == len(self.losses) else math.nan

    @property
    def spread(self) -> float:
        return stdev(self.losses) if self.losses and math.isfinite(self.mean) else math.nan

    @property
    def tokens_per_s(self) -> float:
        rates = [r.tokens_per_s for r in self.runs if math.isfinite(r.tokens_per_s)]
        return mean(rates) if rates else math.nan


@dataclass
class SweepResults:
    plan: Plan
    variants: list[VariantResult]
    baseline: int
    missing: list[tuple[SweepRun, str]]  # runs not finished, with their status (new | partial)


def read_result(run: SweepRun) -> RunResult | None:
    """The results of a finished run folder, or None when it has no final validation."""
    path = run.folder / "metrics.jsonl"
    if not path.is_file():
        return None
    records = read_metrics(path)
    val = [r for r in records if r.get("split") == "val" and isinstance(r.get("step"), int)]
    train = [r for r in records if r.get("split") == "train" and isinstance(r.get("tokens_per_s"), (int, float))]
    if not val:
        return None
    steps = [float(r["step"]) for r in val]
    losses = [math.nan if r.get("loss") is None else float(r["loss"]) for r in val]
    rates = [float(r["tokens_per_s"]) for r in train]
    rate = statistics.median(rates[1:] if len(rates) > 1 else rates) if rates else math.nan  # the first has start-up
    return RunResult(run, losses[-1], rate, (steps, losses), int(steps[-1]))


def collect(plan: Plan) -> SweepResults:
    """Every finished run's final validation loss and speed, per variant, and each variant's
    paired t-test against the baseline over the seeds both have finished."""
    by_variant = {v.index: VariantResult(v.index, v.label, v.axes, plan.params.get(v.index, 0))
                  for v in plan.sweep.variants}
    missing = []
    for run in plan.runs:
        check_folder(run)  # a run of another spec (the sweep file changed) is not this sweep's result
        status = run_status(run)
        result = read_result(run) if status == "done" else None
        if result is None:
            missing.append((run, status))
        else:
            by_variant[run.variant.index].runs.append(result)
    baseline = by_variant[plan.sweep.baseline]
    base_by_seed = {r.run.seed: r.final_loss for r in baseline.runs}
    for variant in by_variant.values():
        if variant is baseline:
            continue
        pairs = [(base_by_seed[r.run.seed], r.final_loss) for r in variant.runs if r.run.seed in base_by_seed]
        variant.paired_seeds = len(pairs)
        variant.test = paired_t_test([a for a, _ in pairs], [b for _, b in pairs])
    return SweepResults(plan, list(by_variant.values()), plan.sweep.baseline, missing)
