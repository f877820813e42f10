"""The lines a run prints first (what trains, where, on what) and last (how it went, where the files are)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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
    budget = f" (at most {train.max_minutes:g} min)" if train.max_minutes else ""
    extras = [x for x, on in (("compiled", train.compile), ("fused AdamW", run.device.type in FUSED_DEVICES)) if on]
    return (
        f"{spec.name}: {spec.model.kind}, {_params(run.model.num_parameters())} parameters, {train.task} | "
        f"{run.device.type}, {precision}{', ' + ', '.join(extras) if extras else ''} | {data} | "
        f"{start}{budget} of {batch} | out: {run.out_dir}"
    )


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
        line += f" vs unigram baseline {base:.4f} ({100 * (1 - loss / base):.1f}% lower)"
    return [line]


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
    present = [f for f in files if (Path(result.out_dir) / f).exists()]
    lines.append(f"  files in {result.out_dir}/: {', '.join(present)}")
    if result.stopped == "time budget":
        more = 2 * spec.train.max_minutes
        lines.append(f"  train longer with: stackform train --resume {result.out_dir} train.max_minutes={more:g}")
    elif result.stopped != "done":
        lines.append(f"  continue with: stackform train --resume {result.out_dir}")
    return "\n".join(lines)
