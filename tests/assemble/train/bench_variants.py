"""Training-step speed of spec variants, side by side in one process (not a test).

    python tests/assemble/train/bench_variants.py gpt-tiny "" "'model.ffn={type: mlp, hidden: 512}'" \\
        "train.batch_size=16" "model.d_model=96 model.ffn.hidden=384"

Each argument after the spec is one variant (overrides, split like a shell line; "" is the spec as
it is). Steps of all variants are interleaved, so they share the machine's load; the best
step of each is reported, in tokens per second and as a ratio to the first variant.
"""

from __future__ import annotations

import shlex
import sys
import time

import torch

from stackform.assemble.build import build_model
from stackform.assemble.data import load_task
from stackform.assemble.train.forward import hidden_states
from stackform.assemble.train.loss import chunked_cross_entropy
from stackform.assemble.train.optim import build_optimizer
from stackform.specs import load_spec


def main(spec_name: str, variants: list[str], repeats: int = 20) -> None:
    setups = []
    for text in variants:
        spec = load_spec(spec_name, shlex.split(text))
        torch.manual_seed(0)
        model = build_model(spec)
        model.check_inputs = False
        setups.append((text or "(as is)", spec, load_task(spec), model,
                       build_optimizer(model, spec.train.optimizer, torch.device("cpu"))))
    best = [float("inf")] * len(setups)
    for rep in range(repeats):
        for i, (_, spec, task, model, opt) in enumerate(setups):
            start = time.perf_counter()
            batch = task.train_batch(spec.train.batch_size)
            total, n = chunked_cross_entropy(model.head, hidden_states(model, batch), batch["labels"],
                                             select=spec.train.task != "causal_lm")
            (total / n).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if rep >= 2:  # warm-up steps do not count
                best[i] = min(best[i], (time.perf_counter() - start) / batch["labels"].numel())
    for (name, _, _, model, _), seconds in zip(setups, best):
        print(f"{name:50s} {model.num_parameters() / 1e6:5.2f}M params  {1 / seconds:9,.0f} tokens/s  "
              f"x{best[0] / seconds:.2f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or [""])
