"""The comparison the Transformer paper's story rests on: a byte-level Transformer LM against an
LSTM LM of equal parameter count, trained on the same data for equal wall time.

    python -m stackform.assemble.bench.rnn --seconds 120 [--device cuda] [SPEC] [KEY=VALUE ...]

Both models see the same batches (pydoc, the spec's batch and sequence length), the same
AdamW and the same warmup-then-constant learning rate (each at its own tuned peak);
after the time is up each is evaluated on the same validation windows. Prints tokens/s,
steps, validation loss and bits per byte for both.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from stackform.assemble import assemble
from stackform.assemble.bench import device_of, positive_float, positive_int, run_script
from stackform.assemble.data import load_task
from stackform.assemble.train.linear_ce import linear_cross_entropy
from stackform.specs import load_spec


class LSTMLM(nn.Module):
    """Embedding -> LSTM layers -> projection back to d -> tied output layer."""

    def __init__(self, vocab: int, d: int, hidden: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, hidden, layers, batch_first=True)
        self.proj = nn.Linear(hidden, d)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(ids))  # [b, t, hidden]
        return F.linear(self.proj(h), self.embed.weight)  # [b, t, vocab]


def lstm_of_size(vocab: int, d: int, layers: int, params: int) -> LSTMLM:
    """The LSTM LM whose hidden size brings its parameter count closest to ``params``."""
    best = min(range(16, 2048, 4), key=lambda h: abs(_count(vocab, d, h, layers) - params))
    return LSTMLM(vocab, d, best, layers)


def _count(vocab: int, d: int, h: int, layers: int) -> int:
    lstm = 4 * (h * d + h * h + 2 * h) + (layers - 1) * 4 * (2 * h * h + 2 * h)
    return vocab * d + lstm + h * d + d


def _train(name, model, loss_fn, task, batch, seconds, lr, device, bf16):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    steps, tokens, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        b = {k: v.to(device) for k, v in task.train_batch(batch).items()}
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (steps + 1) / 100)
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            loss = loss_fn(model, b["input_ids"], b["labels"])
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps += 1
        tokens += b["input_ids"].numel()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return {"name": name, "steps": steps, "tokens_per_s": tokens / elapsed, "seconds": elapsed}


@torch.no_grad()
def _evaluate(model, loss_fn, task, batch, device, bf16) -> float:
    model.eval()
    total, count = 0.0, 0
    for b in task.eval_batches(batch, 20):
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            loss = loss_fn(model, b["input_ids"].to(device), b["labels"].to(device))
        total += float(loss) * b["labels"].numel()
        count += b["labels"].numel()
    model.train()
    return total / count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stackform.assemble.bench.rnn", description=__doc__.split("\n")[0])
    p.add_argument("spec", nargs="?", default="gpt-tiny")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--seconds", type=positive_float, default=120.0, help="training time for each model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--lstm-layers", type=positive_int, default=2)
    p.add_argument("--lstm-lr", type=positive_float, default=3e-3)
    args = p.parse_args(argv)
    spec = load_spec(args.spec, args.overrides)
    device = device_of(args.device)
    bf16 = device.type == "cuda"
    torch.manual_seed(0)
    transformer = assemble(spec, device=device, seed=0)
    transformer.check_inputs = False
    n = transformer.num_parameters()
    lstm = lstm_of_size(spec.model.vocab_size, spec.model.d_model, args.lstm_layers, n).to(device)

    def tf_loss(model, ids, labels):
        total, count = linear_cross_entropy(model(ids, logits=False).hidden, model.head.weight, None, labels)
        return total / count

    def lstm_loss(model, ids, labels):
        logits = model(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1))

    batch = spec.train.batch_size
    print(f"{spec.name}: transformer {n:,} parameters; LSTM {sum(p.numel() for p in lstm.parameters()):,} "
          f"({args.lstm_layers} layers, hidden {lstm.lstm.hidden_size}); batch {batch} x "
          f"{spec.train.seq_len or spec.model.max_len} tokens; {args.seconds:.0f} s each on {device}")
    rows = []
    for name, model, loss_fn, lr in (("transformer", transformer, tf_loss, spec.train.optimizer.lr),
                                     ("lstm", lstm, lstm_loss, args.lstm_lr)):
        task = load_task(spec)  # the same batches for both
        row = _train(name, model, loss_fn, task, batch, args.seconds, lr, device, bf16)
        row["val_loss"] = _evaluate(model, loss_fn, task, batch, device, bf16)
        rows.append(row)
    print(f"{'model':<13}{'params':>10}{'steps':>8}{'tokens/s':>11}{'val loss':>10}{'bits/byte':>11}")
    for row, model in zip(rows, (transformer, lstm)):
        params = sum(p.numel() for p in model.parameters())
        print(f"{row['name']:<13}{params:>10,}{row['steps']:>8}{row['tokens_per_s']:>11,.0f}"
              f"{row['val_loss']:>10.3f}{row['val_loss'] / math.log(2):>11.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_script(main))
