"""Packing for mlm and seq2seq against padding (and plain windows): tokens/s, padding share and the
validation loss at equal tokens. Run through bench_packing.py (``--task mlm`` / ``--task seq2seq``):

    python tests/benchmarks/bench_packing.py --task seq2seq [--repeats 5] [--steps 4] [--train-tokens N]
    python tests/benchmarks/bench_packing.py --task mlm [--folder DIR] [...]

- seq2seq: transformer-tiny on the builtin ``numbers`` task; ``padded``: one pair per row (the
  default), ``packed``: ``train.packing`` rows of several pairs; 32 rows per batch either way;
  ``packed16``: packed, 16 rows (about the 32 pairs per step of ``padded``: at equal tokens, as
  many optimizer steps).
- mlm: bert-tiny on a text folder of files of mixed lengths (``--folder``, else 400 files of 16 B to
  4 KB cut from pydoc's topics, lengths log-uniform); ``plain``: windows of the stream across files
  (the default), ``packed``: the same windows with document ids, ``padded``: one file (or a
  128-token piece of one) per row, padded; 32 rows of 128.

Each mode trains (forward + backward + AdamW) in turn in one process, alternated ``--repeats``
times; tokens/s counts real (non-pad) tokens of the inputs, both sides for seq2seq. With
``--train-tokens N``, each mode then trains a fresh model (same init) until N real tokens went in
and is evaluated on the same validation batches (seq2seq: one pair per row; mlm: the packed
validation windows, i.e. each document alone, and the plain ones).
"""

from __future__ import annotations

import math
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stackform.assemble import assemble, load_spec
from stackform.assemble.data import load_task, mask_tokens, pydoc_documents
from stackform.assemble.train.evaluate import evaluate
from stackform.assemble.train.forward import input_tokens
from stackform.assemble.train.loss import chunked_cross_entropy, loss_function


def mixed_folder(root: Path, n_files: int = 400, seed: int = 0) -> Path:
    """``n_files`` UTF-8 files cut from pydoc's text, lengths log-uniform in [16, 4096] bytes."""
    text = b"\n".join(pydoc_documents()).decode("utf-8")
    rng, start = random.Random(seed), 0
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        n = int(math.exp(rng.uniform(math.log(16), math.log(4096))))
        (root / f"doc{i:04d}.txt").write_text(text[start:start + n], encoding="utf-8")
        start = (start + n) % (len(text) - 4096)
    return root


class PaddedMLM:
    """One document (or a seq_len piece of one) per row, padded; the same masking as TextTask."""

    def __init__(self, stream: np.ndarray, eos: int, pad: int, mask_id: int, seq_len: int, seed: int):
        ends = np.flatnonzero(stream == eos)
        self.rows, start = [], 0
        for end in ends:
            doc = stream[start:end + 1]
            self.rows += [doc[i:i + seq_len] for i in range(0, len(doc), seq_len)]
            start = end + 1
        self.pad, self.mask_id, self.seq_len = pad, mask_id, seq_len
        self.generator = torch.Generator().manual_seed(seed)

    def train_batch(self, batch_size: int) -> dict:
        pick = torch.randint(0, len(self.rows), (batch_size,), generator=self.generator).tolist()
        ids = np.full((batch_size, self.seq_len), self.pad, dtype=np.int64)
        for i, j in enumerate(pick):
            ids[i, :len(self.rows[j])] = self.rows[j]
        w = torch.from_numpy(ids)
        inputs, labels = mask_tokens(w, mask_id=self.mask_id, generator=self.generator)  # pads are never chosen
        return {"input_ids": inputs, "labels": labels, "attention_mask": w != self.pad}


def _loss(model, spec, batch):
    if "attention_mask" in batch:  # padded mlm rows
        hidden = model(batch["input_ids"], attention_mask=batch["attention_mask"], logits=False).hidden
        return chunked_cross_entropy(model.head, hidden, batch["labels"], select=True)
    return loss_function(model, model, spec, compile=False)(batch)


def _tokens(batch, pad) -> tuple[int, int]:
    """(real tokens, positions) of a batch's inputs."""
    ids = [batch[k] for k in ("input_ids", "src_ids", "tgt_ids") if k in batch]
    return input_tokens(batch, pad), sum(t.numel() for t in ids)


def _step(model, opt, spec, batch) -> None:
    loss, n = _loss(model, spec, batch)
    (loss / max(int(n), 1)).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def setup(task_name: str, folder: str | None, cache: Path):
    """(specs by mode, tasks by mode, validation specs) for ``task_name``."""
    if task_name == "seq2seq":
        base = ["train.max_minutes=null", "train.eval_steps=8"]  # 256 validation pairs
        specs = {"padded": load_spec("transformer-tiny", base),
                 "packed": load_spec("transformer-tiny", base + ["train.packing=true"]),
                 # about as many pairs per step as padded (a packed row holds ~2 numbers pairs)
                 "packed16": load_spec("transformer-tiny", base + ["train.packing=true", "train.batch_size=16"])}
        tasks = {name: load_task(s) for name, s in specs.items()}
        print(f"builtin 'numbers': {len(tasks['padded'].train)} training pairs, {len(tasks['padded'].val)} validation")
        return specs, tasks
    path = folder or str(mixed_folder(cache / "mixed"))
    sizes = sorted(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    print(f"{path}: {len(sizes)} files, bytes: median {statistics.median(sizes):.0f}, min {sizes[0]}, max {sizes[-1]}")
    base = ["train.max_minutes=null", f"train.data={{type: text, path: {path}}}", "train.eval_steps=4"]
    specs = {"plain": load_spec("bert-tiny", base), "packed": load_spec("bert-tiny", base + ["train.packing=true"])}
    tasks = {name: load_task(s) for name, s in specs.items()}
    m = specs["plain"].model
    tasks["padded"] = PaddedMLM(np.asarray(tasks["packed"].split.train), m.eos_id, m.pad_id, m.mask_id, m.max_len, 1)
    specs["padded"] = specs["plain"]
    return specs, tasks


def speed(specs, tasks, repeats: int, steps: int) -> None:
    pad = next(iter(specs.values())).model.pad_id
    models = {}
    for name, s in specs.items():
        model = assemble(s, seed=0).train()
        models[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    rates = {name: [] for name in specs}
    pads = {name: [] for name in specs}
    for _ in range(repeats):
        for name, s in specs.items():
            model, opt = models[name]
            real = total = 0
            start = time.perf_counter()
            for _ in range(steps):
                b = tasks[name].train_batch(s.train.batch_size)
                _step(model, opt, s, b)
                r, t = _tokens(b, pad)
                real, total = real + r, total + t
            rates[name].append(real / (time.perf_counter() - start))
            pads[name].append(1 - real / total)
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()}, {repeats} x {steps} steps, "
          f"rows per batch: " + ", ".join(f"{name} {s.train.batch_size}" for name, s in specs.items()))
    first = next(iter(rates))
    base = statistics.median(rates[first])
    for name, r in rates.items():
        print(f"{name:>8}: {statistics.median(r):8.0f} tok/s (min {min(r):.0f}, max {max(r):.0f}; "
              f"{statistics.median(r) / base:.2f}x {first}), padding {100 * statistics.mean(pads[name]):.1f}%")


def equal_tokens(specs, tasks, train_tokens: int, lr: float = 1e-3) -> None:
    """Each mode from the same init until ``train_tokens`` real tokens went in; validation metrics."""
    pad = next(iter(specs.values())).model.pad_id
    cpu = torch.device("cpu")
    for name, s in specs.items():
        torch.manual_seed(0)
        model = assemble(s, seed=0).train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        seen = steps = 0
        start = time.perf_counter()
        while seen < train_tokens:
            b = tasks[name].train_batch(s.train.batch_size)
            _step(model, opt, s, b)
            seen, steps = seen + _tokens(b, pad)[0], steps + 1
        took = time.perf_counter() - start
        line = f"{name:>8}: {steps} steps, {seen} tokens, {took:.0f} s;"
        evals = [("val", tasks["packed"], specs["packed"])]
        if "plain" in specs:
            evals = [("val per document", tasks["packed"], specs["packed"]),
                     ("val plain windows", tasks["plain"], specs["plain"])]
        for label, task, spec in evals:
            metrics = evaluate(model, task, spec, cpu, None)
            line += f" {label}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "ppl")
        print(line, flush=True)


def main(args) -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("STACKFORM_CACHE", str(Path(tmp) / "cache"))
        specs, tasks = setup(args.task, args.folder, Path(tmp))
        if args.repeats:
            speed(specs, tasks, args.repeats, args.steps)
        if args.train_tokens:
            equal_tokens(specs, tasks, args.train_tokens)
