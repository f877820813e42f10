"""Evaluation of any checkpoint: ``evaluate_checkpoint`` (``stackform eval``) and, in ``harness.py``,
a model class for lm-evaluation-harness.

``evaluate_checkpoint(RUN, data=None, split="val")`` loads a run folder or a ``.safetensors`` file,
reads the data of its own spec (``train.data``) or of ``data`` (a ``train.data`` mapping as YAML,
or a path whose type is told by its suffix), and returns the metrics training reports: loss and
perplexity, bits per byte (causal LM), exact match (seq2seq), the unigram baseline (MLM), over the
whole split (``val``, ``train`` or ``all``: every record or token of the data) unless
``max_batches`` says otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from stackform.specs import Spec, SpecError, load_spec

from .errors import EvalError

SUFFIX_TYPES = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".tsv": "pairs"}
SPLITS = ("val", "train", "all")


@dataclass
class EvalResult:
    """What an evaluation measured, on which data and split, of which checkpoint (and its step)."""

    checkpoint: str
    step: int | None
    task: str
    source: str
    split: str
    batches: int
    metrics: dict[str, float]


def data_type_of(path: str) -> str:
    """The ``train.data`` type a path reads as: by suffix, a save_to_disk folder, else text."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        marked = any((folder / name).is_file() for name in ("dataset_dict.json", "state.json"))
        return "hf_dataset" if marked else "text"
    return SUFFIX_TYPES.get(folder.suffix.lower(), "text")


def with_data(spec: Spec, data: str | None) -> Spec:
    """``spec`` whose ``train.data`` is ``data``: YAML of a mapping (``{type: jsonl, path: x}``), or a
    path (the fields of the spec's own data are kept when the type is the same). Relative to the cwd."""
    if data is None:
        return spec
    text = data.strip()
    if not text:
        raise EvalError("--data: empty; give a path or a mapping such as '{type: jsonl, path: val.jsonl}'")
    if text.startswith("{"):
        value = text
    else:
        kind = data_type_of(text)
        own = spec.train.data.model_dump(mode="json") if spec.train.data.type == kind else {"type": kind}
        value = json.dumps({**{k: v for k, v in own.items() if k != "val_fraction"}, "path": text})
    try:
        return load_spec(spec, [f"train.data={value}"])
    except SpecError as exc:
        issue = exc.issues[0]
        raise EvalError(f"--data {data}: {issue.path + ': ' if issue.path else ''}{issue.message}") from None


def split_task(spec: Spec, split: str, tokenizer: Any = None) -> Any:
    """The task of ``spec``'s data whose evaluation batches cover ``split``: val, train, or all of it.
    ``tokenizer``: the run's own vocabulary tokenizer (BPE, tokenizer.json), if it has one."""
    import numpy as np

    from ..data import DATA_SEED_OFFSET, TextTask, load_split, load_task
    from ..data.seq2seq import PairTensors
    from ..data.tokens import TokenSplit
    from ..tokenizer import ByteTokenizer

    train, model = spec.train, spec.model
    if train.tokenizer.type != "bytes":  # text is split first, then tokenized, as training did
        if split != "val":
            raise EvalError(f"--split {split}: a run with a {train.tokenizer.type} tokenizer is evaluated on its "
                            "validation split only (--split val)")
        return load_task(spec, tokenizer)
    tok = ByteTokenizer.for_model(model)
    if train.task == "seq2seq":
        task = load_task(spec)
        if split != "val":
            pairs = task.train_pairs + (task.val_pairs if split == "all" else [])
            task.val, task.val_pairs = PairTensors(pairs, tok, model.max_len, task.source, split), pairs
        return task
    tokens = load_split(spec)
    chosen = {"val": tokens.val, "train": tokens.train}.get(split)
    if chosen is None:  # all: the training blocks, then the validation blocks
        chosen = np.concatenate([np.asarray(tokens.train), np.asarray(tokens.val)])
    counted = chosen if split == "all" else tokens.train  # the MLM unigram baseline counts training tokens
    return TextTask(TokenSplit(counted, chosen, tokens.source), train.task, train.seq_len or model.max_len,
                    seed=train.seed + DATA_SEED_OFFSET, mask_id=tok.mask_id,
                    mlm_probability=train.mlm_probability, eos_id=tok.eos_id if train.packing else None)


def batch_count(task: Any, batch_size: int) -> int:
    """How many evaluation batches the whole validation split makes."""
    if task.task == "seq2seq":
        n = len(task.val)
    else:
        stride = task.window - 1 if task.task == "causal_lm" else task.window
        n = len(range(0, len(task.split.val) - task.window + 1, stride))
    return max(1, math.ceil(n / batch_size))


class _Progress:
    """A task whose evaluation batches advance a tqdm bar (on a terminal; STACKFORM_NO_BAR hides it)."""

    def __init__(self, task: Any, total: int, label: str):
        from tqdm.auto import tqdm

        off = bool(os.environ.get("STACKFORM_NO_BAR")) or not sys.stderr.isatty()
        self.task = task
        self.tokenizer = getattr(task, "tokenizer", None)  # evaluate() counts bytes per token through it
        self.bar = tqdm(total=total, unit="batch", desc=label[:40], leave=False, disable=off, file=sys.stderr)

    def eval_batches(self, batch_size: int, max_batches: int) -> Iterator[Any]:
        for batch in self.task.eval_batches(batch_size, max_batches):
            yield batch
            self.bar.update(1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.task, name)


def evaluate_checkpoint(path: str | os.PathLike, data: str | None = None, split: str = "val", *,
                        batch_size: int | None = None, max_batches: int | None = None,
                        device: str = "auto") -> EvalResult:
    """Evaluate the checkpoint at ``path`` (see the module docstring); every user error is one line."""
    from ..checkpoint import load
    from ..data import unigram_log_probs
    from ..train.commit import read_metadata
    from ..train.device import resolve_device, resolve_precision
    from ..train.evaluate import evaluate

    if split not in SPLITS:
        raise EvalError(f"--split {split}: one of {', '.join(SPLITS)}")
    for flag, value in (("--batch-size", batch_size), ("--batches", max_batches)):
        if value is not None and value < 1:
            raise EvalError(f"{flag} {value}: give a whole number of at least 1")
    torch_device = resolve_device(device, "--device")
    model = load(path, device=torch_device)
    spec = with_data(model.spec, data)
    file = Path(path) / "model.safetensors" if Path(path).is_dir() else Path(path)
    step_text = read_metadata(file).get("step", "")
    task = split_task(spec, split, getattr(model, "tokenizer", None))
    size = batch_size or spec.train.batch_size
    total = min(batch_count(task, size), max_batches or math.inf)
    spec = load_spec(spec, [f"train.batch_size={size}", f"train.eval_steps={total}"])
    source = task.source if spec.train.task == "seq2seq" else task.split.source
    unigram = unigram_log_probs(task.split.train, spec.model.vocab_size) if spec.train.task == "mlm" else None
    progress = _Progress(task, total, f"eval {split}")
    try:
        metrics = evaluate(model, progress, spec, torch_device, resolve_precision(spec.train.precision, torch_device),
                           unigram)
    finally:
        progress.bar.close()
    return EvalResult(str(path), int(step_text) if step_text.isdigit() else None, spec.train.task, source, split,
                      total, metrics)
