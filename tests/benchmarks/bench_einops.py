"""What einops would cost in attention's head split and merge (why stackform does not depend on it).

Two measurements, each alternating plain and einops in one process, medians and spread printed
with the threads and the load average:

1. per call: ``x.view(b, t, n, d).transpose(1, 2)`` vs ``rearrange(x, "b t (n d) -> b n t d")``,
   and the merge back, at the tiny preset's shapes;
2. per training step: ``stackform bench``'s tiny preset with MultiHeadAttention's ``_heads`` /
   ``_merge`` as written or as ``einops.rearrange`` (patched on the instances of one model).

    python tests/benchmarks/bench_einops.py [--threads 1] [--repeats 9] [--steps 20]

Needs ``pip install einops`` (no longer a dependency of stackform).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import types

import torch

try:
    from einops import rearrange
except ImportError:  # pragma: no cover - a measurement script
    raise SystemExit("pip install einops to run this measurement")

from stackform.assemble import assemble
from stackform.assemble.cli.bench import PRESETS


def _split(self, x, n):
    return rearrange(x, "b t (n d) -> b n t d", n=n)


def _merge(self, y):
    return rearrange(y, "b h t d -> b t (h d)")


def _alternate(fns: dict, repeats: int, inner: int) -> dict:
    times = {k: [] for k in fns}
    for r in range(repeats):
        for k in (list(fns) if r % 2 == 0 else list(reversed(fns))):
            t0 = time.perf_counter()
            for _ in range(inner):
                fns[k]()
            times[k].append((time.perf_counter() - t0) / inner)
    return times


def _show(label: str, times: dict, unit: float, suffix: str) -> None:
    for k, ts in times.items():
        print(f"{label:<14} {k:<7} median {statistics.median(ts) * unit:9.2f} {suffix} "
              f"(min {min(ts) * unit:.2f}, max {max(ts) * unit:.2f})", flush=True)
    a, b = times.values()
    ratios = [y / x for x, y in zip(a, b)]
    print(f"{label:<14} einops / plain paired: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()}", flush=True)
    x, y = torch.randn(8, 16, 64), torch.randn(8, 4, 16, 16)
    calls = {"plain": lambda: x.view(8, 16, 4, 16).transpose(1, 2), "einops": lambda: _split(None, x, 4)}
    _show("split / call", _alternate(calls, args.repeats, 5000), 1e6, "us")
    calls = {"plain": lambda: y.transpose(1, 2).reshape(8, 16, 64), "einops": lambda: _merge(None, y)}
    _show("merge / call", _alternate(calls, args.repeats, 5000), 1e6, "us")

    name, overrides, batch, seq = PRESETS["tiny"]
    model = assemble(name, overrides=overrides, seed=0)
    attns = [layer.self_attn for layer in model.stack.layers]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, 256, (batch, seq))

    def use(einops: bool) -> None:
        for a in attns:
            if einops:
                a._heads, a._merge = types.MethodType(_split, a), types.MethodType(_merge, a)
            else:
                a.__dict__.pop("_heads", None), a.__dict__.pop("_merge", None)

    def step(einops: bool):
        def run():
            use(einops)
            loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return run

    for _ in range(5):
        step(False)()
    _show("tiny step", _alternate({"plain": step(False), "einops": step(True)}, args.repeats, args.steps), 1e3, "ms")
    print(f"load average {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
