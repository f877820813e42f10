"""Packing against padding and against plain (boundary-crossing) windows: tokens/s and padding share.

    python tests/benchmarks/bench_packing.py [--repeats 5] [--steps 4] [--separator '\n\n']
    python tests/benchmarks/bench_packing.py --task mlm|seq2seq [--folder DIR] [--train-tokens N]

(``--task mlm`` and ``--task seq2seq``: bench_packing_tasks.py.)

The gpt-tiny model (rope, d_model 128, 4 layers) trains (forward + backward + AdamW) on pydoc
windows of 128 tokens, batch 8, three ways alternated in one process:

- ``plain``: random windows of the token stream, attention across document boundaries (the
  default ``train.packing: false``);
- ``packed``: the same windows with document ids (``train.packing: true``);
- ``padded``: one document (or a 128-token piece of one) per row, padded to 128 with pad_id.

``--separator`` splits pydoc's topics further (``train.packing_separator``): with ``'\n\n'`` the
documents are paragraphs of mixed, mostly short lengths. Reports the median tokens/s over real (non-pad) tokens, its spread, and the share of pads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch

from stackform.assemble import assemble, load_spec
from stackform.assemble.data import load_task
from stackform.assemble.data.windows import TextTask
from stackform.assemble.train.loss import chunked_cross_entropy, loss_function


def padded_rows(stream: np.ndarray, eos: int, seq_len: int) -> list[np.ndarray]:
    """Every document of the stream (ending at eos), cut into pieces of seq_len + 1 tokens."""
    ends = np.flatnonzero(stream == eos)
    rows, start = [], 0
    for end in ends:
        doc = stream[start:end + 1]
        rows += [doc[i:i + seq_len + 1] for i in range(0, len(doc) - 1, seq_len)]
        start = end + 1
    return [r for r in rows if len(r) >= 2]


def padded_batch(rows, pick, pad: int, seq_len: int) -> dict:
    windows = np.full((len(pick), seq_len + 1), pad, dtype=np.int64)
    for i, j in enumerate(pick):
        windows[i, :len(rows[j])] = rows[j]
    w = torch.from_numpy(windows)
    labels = w[:, 1:].clone()
    labels[labels == pad] = -100
    return {"input_ids": w[:, :-1], "labels": labels}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--separator", default=None, help="train.packing_separator (e.g. a blank line)")
    ap.add_argument("--task", choices=("causal_lm", "mlm", "seq2seq"), default="causal_lm")
    ap.add_argument("--folder", default=None, help="mlm: a text folder (default: generated, mixed lengths)")
    ap.add_argument("--train-tokens", type=int, default=0, help="mlm, seq2seq: validation loss at equal tokens")
    args = ap.parse_args()
    if args.task != "causal_lm":
        import bench_packing_tasks  # (this script's folder)

        return bench_packing_tasks.main(args)
    torch.manual_seed(0)
    overrides = ["train.packing=true", "train.max_minutes=null"]
    if args.separator is not None:
        overrides.append(f"train.packing_separator={json.dumps(args.separator)}")  # a YAML string
    spec = load_spec("gpt-tiny", overrides)
    specs = {"plain": load_spec("gpt-tiny", ["train.max_minutes=null"]), "packed": spec, "padded": spec}
    seq_len, batch, pad, eos = spec.model.max_len, spec.train.batch_size, spec.model.pad_id, spec.model.eos_id
    packed = load_task(spec)
    tasks = {"packed": packed, "plain": TextTask(packed.split, "causal_lm", seq_len, seed=1)}  # same stream
    rows = padded_rows(np.asarray(packed.split.train), eos, seq_len)
    lengths = [len(r) - 1 for r in rows]
    print(f"{len(rows)} padded rows, tokens per row: median {statistics.median(lengths)}, mean {statistics.mean(lengths):.1f}")
    gen = torch.Generator().manual_seed(0)
    pads = {"plain": [], "packed": [], "padded": []}
    rates = {name: [] for name in pads}
    models = {}
    for name, s in specs.items():
        model = assemble(s, seed=0).train()
        models[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3),
                        loss_function(model, model, s, compile=False))
    for _ in range(args.repeats):
        for name in ("plain", "packed", "padded"):
            model, opt, loss_fn = models[name]
            real = total = 0
            start = time.perf_counter()
            for _ in range(args.steps):
                if name == "padded":
                    b = padded_batch(rows, torch.randint(0, len(rows), (batch,), generator=gen).tolist(), pad, seq_len)
                    b["attention_mask"] = b["input_ids"] != pad
                    hidden = model(b["input_ids"], attention_mask=b["attention_mask"], logits=False).hidden
                    loss, n = chunked_cross_entropy(model.head, hidden, b["labels"], select=True)
                    n_real = int(b["attention_mask"].sum())
                else:
                    b = tasks[name].train_batch(batch)
                    loss, n = loss_fn(b)
                    n_real = b["input_ids"].numel()
                (loss / n).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                real, total = real + n_real, total + b["input_ids"].numel()
            rates[name].append(real / (time.perf_counter() - start))
            pads[name].append(1 - real / total)
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()}, "
          f"{args.repeats} x {args.steps} steps of {batch} x {seq_len}")
    base = statistics.median(rates["plain"])
    for name in ("plain", "packed", "padded"):
        r = rates[name]
        print(f"{name:>7}: {statistics.median(r):8.0f} tok/s (min {min(r):.0f}, max {max(r):.0f}; "
              f"{statistics.median(r) / base:.2f}x plain), padding {100 * statistics.mean(pads[name]):.1f}%")


if __name__ == "__main__":
    main()
