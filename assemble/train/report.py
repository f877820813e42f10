"""The end of a run: ``curves.png`` (loss and lr), ``samples.txt`` and the printed summary."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stackform.specs import Spec

from ..checkpoint import atomic_write
from ..data import IGNORE
from ..tokenizer import ByteTokenizer
from .device import autocast
from .forward import to_device

PROMPT_BYTES = 24


def plot_curves(path: Path, records: list[dict[str, Any]], title: str) -> None:
    """Train/val loss and the learning rate against the step, as a PNG (no global matplotlib state)."""
    buffer = io.BytesIO()
    curves_figure(records, title).savefig(buffer, format="png", dpi=100)
    atomic_write(path, buffer.getvalue())


def curves_figure(records: list[dict[str, Any]], title: str):
    """The figure of ``plot_curves``: [loss axes, learning-rate axes]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = [r for r in records if r.get("split") == "train"]
    val = [r for r in records if r.get("split") == "val"]
    fig = Figure(figsize=(9, 3.6), tight_layout=True)
    FigureCanvasAgg(fig)
    loss_ax, lr_ax = fig.subplots(1, 2)
    _line(loss_ax, train, "loss", label="train", lw=1, color="tab:blue")
    loss_ax.plot([r["step"] for r in val], [_number(r.get("loss")) for r in val], "o-", label="validation", ms=3,
                 color="tab:orange")
    loss_ax.set(xlabel="step", ylabel="loss (nats/token)", title=title)
    loss_ax.legend()
    loss_ax.grid(alpha=0.3)
    _line(lr_ax, train, "lr", color="tab:green")
    lr_ax.set(xlabel="step", ylabel="learning rate", title="schedule")
    lr_ax.grid(alpha=0.3)
    return fig


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _line(ax, records: list[dict[str, Any]], key: str, **style: Any) -> None:
    """``key`` against the step as a line; a point with no finite neighbour (a run shorter than
    log_every has one train record, or a point between gaps) gets a marker, or it would not show."""
    from stackform.assemble.viz.compare import isolated_points

    xs, ys = [r["step"] for r in records], [_number(r.get(key)) for r in records]
    ax.plot(xs, ys, **style)
    alone = isolated_points(xs, ys)
    ax.plot([xs[i] for i in alone], [ys[i] for i in alone], ls="none", marker="s", ms=3.5, color=style["color"])


def _text(tok: ByteTokenizer, ids: list[int]) -> str:
    if tok.kind != "bytes":
        return tok.decode(ids, stop_at_eos=False)
    return tok.decode([i for i in ids if i < 256], stop_at_eos=False)


def _tok(task, spec: Spec) -> ByteTokenizer:
    return getattr(task, "tokenizer", None) or ByteTokenizer.for_model(spec.model)


def lm_samples(model, task, spec: Spec, device: torch.device, amp_dtype) -> list[str]:
    """Continuations of the starts of validation lines, sampled at temperature 0.8."""
    from ..generation import generate

    tok = _tok(task, spec)
    val = np.asarray(task.split.val[: 1 << 20])
    newline = ord("\n") if tok.kind == "bytes" else -1  # other tokenizers: evenly spread starts
    newlines = np.flatnonzero(val[: len(val) - PROMPT_BYTES - 1] == newline) + 1
    n = spec.train.samples
    spread = np.linspace(0, max(len(val) - PROMPT_BYTES - 1, 0), n).astype(int).tolist()
    starts = newlines[np.linspace(0, len(newlines) - 1, n).astype(int)].tolist() if len(newlines) else spread
    prompts = torch.tensor([[int(x) for x in val[s:s + PROMPT_BYTES]] for s in starts], device=device)
    generator = torch.Generator(device=device).manual_seed(spec.train.seed)
    with autocast(device, amp_dtype):
        out = generate(model, prompts, spec.train.sample_tokens, temperature=0.8, generator=generator)
    return [f"[{_text(tok, p.tolist())}]{_text(tok, o[PROMPT_BYTES:].tolist())}" for p, o in zip(prompts, out)]


def mlm_samples(model, task, spec: Spec, device: torch.device, amp_dtype) -> list[str]:
    """Validation windows with their masked bytes (shown as _) and the model's guesses."""
    tok = _tok(task, spec)
    batch = to_device(next(task.eval_batches(spec.train.samples, 1)), device)
    with torch.no_grad(), autocast(device, amp_dtype):
        guess = model(batch["input_ids"], document_ids=batch.get("document_ids")).argmax(-1)  # (packing)
    lines = []
    for ids, labels, pred in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), guess.tolist()):
        original = [lab if lab != IGNORE else i for i, lab in zip(ids, labels)]
        masked = [ord("_") if lab != IGNORE else i for i, lab in zip(ids, labels)]
        filled = [p if lab != IGNORE else i for i, lab, p in zip(ids, labels, pred)]
        lines.append("\n".join(f"{name:>9}: {_text(tok, row)!r}" for name, row in
                               (("original", original), ("masked", masked), ("filled", filled))))
    return lines


def seq2seq_samples(model, task, spec: Spec, device: torch.device, amp_dtype) -> list[str]:
    """Greedy outputs for the first validation pairs, marked right or wrong."""
    from ..generation import generate_seq2seq

    tok = _tok(task, spec)
    pairs = task.val_pairs[: spec.train.samples]
    if not pairs:
        return []
    batch = task.val.batch(torch.arange(len(pairs)))
    with autocast(device, amp_dtype):
        out = generate_seq2seq(model, batch["src_ids"].to(device), spec.model.max_len)
    lines = []
    for (src, tgt), ids in zip(pairs, out.tolist()):
        guess = tok.decode(ids)
        lines.append(f"{src!r} -> {guess!r}  {'ok' if guess == tgt else f'(expected {tgt!r})'}")
    return lines


def samples(model, task, spec: Spec, device: torch.device, amp_dtype) -> list[str]:
    """A few outputs of the trained model, by task."""
    if spec.train.samples == 0:
        return []
    make = {"causal_lm": lm_samples, "mlm": mlm_samples, "seq2seq": seq2seq_samples}[spec.train.task]
    model.eval()
    try:
        return make(model, task, spec, device, amp_dtype)
    finally:
        model.train()
