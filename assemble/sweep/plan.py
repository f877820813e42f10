"""From a loaded sweep to its runs: parameter matching, the budget as train.steps / max_minutes,
one run per variant and seed, each a normal run folder under the sweep's out dir. Every run's
spec is validated here, before anything trains; errors point into the sweep file."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from stackform.specs import Spec, SpecError
from stackform.specs.errors import Issue
from stackform.specs.sweep import Setting, Sweep, Variant, load_sweep, settings_spec, show

from .match import count_params, forward_flops_per_token, match_params

TRAIN_FLOPS_PER_FORWARD = 3  # forward + backward (twice the forward) per token


@dataclass
class SweepRun:
    """One training run: a variant at one seed, in its own run folder."""

    variant: Variant
    seed: int
    folder: Path
    settings: list[Setting]
    spec: Spec

    @property
    def name(self) -> str:
        return self.folder.name

    def overrides(self) -> list[str]:
        return [s.override() for s in self.settings]

    def train_overrides(self) -> list[str]:
        """The ``train.*`` overrides: what a resume may (and does) pass again."""
        return [s.override() for s in self.settings if s.dotted.startswith("train.")]


@dataclass
class Plan:
    sweep: Sweep
    runs: list[SweepRun]
    params: dict[int, int] = field(default_factory=dict)  # variant index -> parameters
    tokens_per_step: dict[int, int | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def out_dir(self) -> Path:
        return self.sweep.out_dir

    def command(self, run: SweepRun) -> str:
        args = ["stackform", "train", self.sweep.base_ref, *run.overrides(), "--out-dir", str(run.folder)]
        return shlex.join(args)

    def resume_command(self, run: SweepRun) -> str:
        return shlex.join(["stackform", "train", "--resume", str(run.folder), *run.train_overrides()])


def _error(sweep: Sweep, where: tuple, message: str) -> SpecError:
    file, line, col = sweep.src.where(where) or (str(sweep.path), 0, 0)
    return SpecError([Issue(file, line, col, ".".join(map(str, where)), message)])


def _builder(sweep: Sweep, base_settings: list[Setting], where: tuple, what: str, variant: Variant):
    def build(extra: list[Setting]) -> Spec:
        try:
            return settings_spec(sweep.base_src, [*base_settings, *extra], sweep.src)
        except SpecError as exc:
            issue = exc.issues[0]
            if issue.file == sweep.src.where(())[0]:
                raise SpecError([Issue(issue.file, issue.line, issue.col, issue.path,
                                       f"{issue.message} (variant {variant.label}, with the {what})")]) from None
            raise _error(sweep, where, f"the {what} does not fit variant {variant.label}: {issue}") from None

    return build


def tokens_per_step(spec: Spec) -> int | None:
    """Tokens of one optimizer step (None for seq2seq, whose batches vary in length)."""
    train = spec.train
    if train.task == "seq2seq":
        return None
    return train.batch_size * (train.seq_len or spec.model.max_len) * train.grad_accum


def _budget(sweep: Sweep, spec: Spec, variant: Variant) -> list[Setting]:
    budget = sweep.file.budget
    if budget is None:
        return []
    kind = budget.kind
    where = ("budget", kind)
    if kind == "minutes":
        return [Setting("train.max_minutes", budget.minutes, where)]
    if kind == "steps":
        return [Setting("train.steps", budget.steps, where), Setting("train.max_minutes", None, where)]
    per_step = tokens_per_step(spec)
    if per_step is None:
        raise _error(sweep, where, f"a {kind} budget needs a fixed number of tokens per step, which seq2seq batches "
                                   "do not have; use {minutes: N} or {steps: N}")
    tokens = budget.tokens if kind == "tokens" else budget.flops / (
        TRAIN_FLOPS_PER_FORWARD * forward_flops_per_token(spec))
    steps = int(tokens // per_step)
    if steps < 1:
        raise _error(sweep, where, f"{show(getattr(budget, kind))} {kind} is less than one step of variant "
                                   f"{variant.label} ({per_step:,} tokens: batch_size x seq_len x grad_accum)")
    return [Setting("train.steps", steps, where), Setting("train.max_minutes", None, where)]


def make_plan(sweep: "Sweep | str | Path", out_dir: str | Path | None = None, overrides: list[str] = ()) -> Plan:
    """Every run of the sweep with its validated spec; SpecError (at the sweep file's place) if one does not fit."""
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep, overrides)
    if out_dir is not None:
        sweep.out_dir = Path(out_dir)
    plan = Plan(sweep, [])
    target = count_params(sweep.base) if sweep.file.match == "params" else None
    for variant in sweep.variants:
        settings = list(variant.settings)
        spec = variant.spec
        if target is not None:
            build = _builder(sweep, settings, ("match",), "parameter matching", variant)
            extra = match_params(spec, variant.settings[len(sweep.common):], target, build, ("match",))  # axes: fixed
            if extra is None:
                raise _error(sweep, ("match",), f"cannot bring variant {variant.label} ({count_params(spec):,} "
                                                f"parameters) within 2% of the base's {target:,} by model.ffn.hidden "
                                                "or model.d_model (the ones its settings leave free)")
            if extra:
                spec = build(extra)
                settings += extra
                plan.notes.append(f"{variant.label}: " + ", ".join(f"{s.dotted}={s.value}" for s in extra)
                                  + f" to match the base's parameters ({count_params(spec):,} vs {target:,})")
        budget = _budget(sweep, spec, variant)
        where = ("budget", sweep.file.budget.kind) if budget else ()
        spec = _builder(sweep, settings, where, "budget", variant)(budget)
        settings += budget
        plan.params[variant.index] = count_params(spec)
        plan.tokens_per_step[variant.index] = tokens_per_step(spec)
        for seed in sweep.seeds:
            folder = sweep.out_dir / f"{variant.slug}.s{seed}"
            extra = [Setting("train.seed", seed, ("seeds",)), Setting("name", f"{sweep.name}.{variant.slug}", ())]
            run_settings = [*settings, *extra]
            plan.runs.append(SweepRun(variant, seed, folder, run_settings, _builder(sweep, settings, ("seeds",),
                                                                                    "seed", variant)(extra)))
    return plan
