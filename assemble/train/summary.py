"""The lines a run prints first (what trains, where, on what) and last (how it went, where the files are)."""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

from . import machine
from .console import fmt_duration, fmt_ppl
from .optim import FUSED_DEVICES


def _params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def header(run: Any, resumed: bool) -> str:
    spec, task = run.spec, run.task
    train = spec.train
    precision = {None: "fp32"}.get(run.amp_dtype, str(run.amp_dtype).replace("torch.", "") + " autocast")
    if train.task == "seq2seq":
        data = f"{task.source}: {len(task.train_pairs):,} train / {len(task.val_pairs):,} held-out pairs"
        batch = f"{train.batch_size} pairs"
    else:
        data = f"{task.split.source}: {len(task.split.train):,} train / {len(task.split.val):,} val tokens"
        batch = f"{train.batch_size} x {task.seq_len} tokens"
    if train.grad_accum > 1:
        batch += f" x {train.grad_accum} accumulated"
    start = f"resuming at step {run.counters.step} of {train.steps}" if resumed else f"{train.steps} steps"
    budget = ""
    if train.max_minutes:
        used = f" in all, {fmt_duration(run.counters.elapsed_s)} spent" if resumed else ""
        budget = (f", or {train.max_minutes:g} min (train.max_minutes{used}) if that ends first "
                  "(a line after the first steps says which)")
    extras = [x for x, on in (("compiled", train.compile), ("fused AdamW", run.device.type in FUSED_DEVICES)) if on]
    return (
        f"{spec.name}: {spec.model.kind}, {_params(run.model.num_parameters())} parameters, {train.task} | "
        f"{run.device.type}, {precision}{', ' + ', '.join(extras) if extras else ''}, {machine.describe()} | {data} | "
        f"{start} of {batch}{budget} | out: {run.out_dir}"
    )


def ending_line(horizon: Any, step: int, now: float, train: Any) -> str | None:
    """Which of ``train.steps`` and ``train.max_minutes`` will end the run, once the step time is known."""
    ending = horizon.ending(step, now)
    if ending is None:
        return None
    rate = horizon.step_seconds()
    if ending[0] == "steps":
        left = (train.steps - step + 1) * rate
        return (f"train.steps ends this run: {train.steps} steps at {rate:.3g} s/step in about "
                f"{fmt_duration(now + left)}, within train.max_minutes ({train.max_minutes:g} min)")
    warmup = horizon.warmup_steps(step, now)
    return (f"train.max_minutes ends this run: at {rate:.3g} s/step its {train.max_minutes:g} min reach about "
            f"step {ending[1]:,.0f} of {train.steps} (train.steps); warmup and decay follow the budget "
            f"(warmup {warmup:.0f} step{'s' if round(warmup) != 1 else ''})")


def resume_hint(out_dir: Any, max_minutes: float, elapsed_s: float) -> str:
    """The command that continues a run its time budget stopped: ``max_minutes`` more on top of the time
    already spent (the budget is the run's total), rounded up."""
    total = elapsed_s / 60 + max_minutes
    total = math.ceil(total * 10 - 1e-9) / 10 if total < 10 else math.ceil(total - 1e-9)
    return f"stackform train --resume {shlex.quote(str(out_dir))} train.max_minutes={total:g}"


def _metric_lines(task: str, metrics: dict[str, float]) -> list[str]:
    loss = metrics.get("loss", float("nan"))
    if task == "causal_lm":
        return [f"validation loss {loss:.4f} nats/token, perplexity {fmt_ppl(metrics['ppl'], 3)}, "
                f"{metrics['bpb']:.3f} bits per byte"]
    if task == "seq2seq":
        return [f"validation loss {loss:.4f}, exact match {100 * metrics['exact_match']:.2f}% (held-out, greedy)"]
    base = metrics.get("unigram_loss")
    if base is not None and math.isnan(base):
        return ["validation MLM loss: none of the validation batches' positions was masked "
                "(raise train.mlm_probability, train.eval_steps or train.batch_size)"]
    line = f"validation MLM loss {loss:.4f} nats/masked token"
    if base is not None:
        line += f" vs unigram baseline {base:.4f} ({_versus(loss, base)})"
    return [line]


def _versus(loss: float, base: float) -> str:
    """How ``loss`` compares with the ``base``line, in words that match the sign."""
    change = 100 * (loss / base - 1) if base else math.nan
    if not math.isfinite(change):
        return "not comparable"
    if round(change, 1) == 0:
        return "the same"
    if change < 0:
        return f"{-change:.1f}% lower"
    return f"{change:.1f}% higher: not yet better than predicting each token's frequency"


def summary(result: Any, files: tuple[str, ...]) -> str:
    spec = result.spec
    why = {"done": "finished", "time budget": "stopped at the time budget (train.max_minutes)",
           "interrupted": "interrupted", "stop_at_step": "stopped as asked"}[result.stopped]
    lines = [f"{spec.name}: {why} at step {result.step}/{spec.train.steps} after {fmt_duration(result.elapsed_s)}"]
    lines += ["  " + line for line in _metric_lines(spec.train.task, result.metrics)]
    skipped = getattr(result, "skipped", 0)
    if skipped:
        lines.append(f"  {skipped} of {result.step} steps skipped for a non-finite loss or gradient "
                     "(train.on_nan: skip); try a lower train.optimizer.lr or train.grad_clip")
    if getattr(result, "samples_error", None):
        lines.append(f"  no samples ({result.samples_error})")
    elif getattr(result, "samples", None):
        lines.append("  samples (samples.txt):")
        lines += ["    " + line for sample in result.samples for line in sample.splitlines()]
    present = [f for f in files if (Path(result.out_dir) / f).exists()]
    lines.append(f"  files in {result.out_dir}/: {', '.join(present)}")
    if result.stopped == "time budget":
        lines.append(f"  train longer with: {resume_hint(result.out_dir, spec.train.max_minutes, result.elapsed_s)}  "
                     "(a total for the run: its learning-rate curve is extended, not restarted)")
    elif result.stopped != "done":
        lines.append(f"  continue with: stackform train --resume {result.out_dir}")
    return "\n".join(lines)
