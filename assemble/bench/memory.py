"""Peak training memory with and without activation checkpointing, and the loss curves of both.

    python -m stackform.assemble.bench.memory [SPEC] [KEY=VALUE ...] [--batch 32] [--steps 10]

Each configuration runs in a fresh process (so the peak is its own): it builds the model
and AdamW, then trains ``--steps`` steps on fixed random batches. The peak is measured two
ways: the process's peak resident memory above what it held before the model was built
(``ru_maxrss``, with glibc's mmap threshold fixed so freed memory is returned; includes weights,
gradients, AdamW moments, activations and temporaries), and the bytes
autograd keeps for backward (``saved_tensors_hooks``, activations only). On CUDA the peak
is ``torch.cuda.max_memory_allocated``. The losses of both runs are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

import torch

from stackform.assemble.bench import device_of, positive_int, run_script
from stackform.registry import StackformError


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _child(spec_name: str, overrides: list[str], batch: int, steps: int, checkpointing: bool, device: str) -> dict:
    from stackform.assemble import assemble
    from stackform.assemble.train.linear_ce import linear_cross_entropy

    torch.set_num_threads(1)
    dev = device_of(device)
    before = _rss_bytes()
    model = assemble(spec_name, overrides=overrides, device=dev, seed=0)
    model.check_inputs = False
    for stack in (getattr(model, name, None) for name in ("stack", "encoder", "decoder")):
        if stack is not None:
            stack.activation_checkpointing = checkpointing
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seq = model.spec.train.seq_len or model.spec.model.max_len
    g = torch.Generator().manual_seed(0)
    saved = {"now": 0, "peak": 0}

    def pack(t: torch.Tensor):
        saved["now"] += t.numel() * t.element_size()
        saved["peak"] = max(saved["peak"], saved["now"])
        return t

    losses = []
    for _ in range(steps):
        ids = torch.randint(0, 256, (batch, seq + 1), generator=g).to(dev)
        saved["now"] = 0
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            hidden = model(ids[:, :-1], logits=False).hidden
            total, n = linear_cross_entropy(hidden, model.head.weight, None, ids[:, 1:])
            loss = total / n
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
    peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)
    return {"peak": peak, "saved": saved["peak"], "losses": losses}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stackform.assemble.bench.memory", description=__doc__.split("\n")[0])
    p.add_argument("spec", nargs="?", default="gpt-tiny")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--batch", type=positive_int, default=32)
    p.add_argument("--steps", type=positive_int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        result = _child(args.spec, args.overrides, args.batch, args.steps, args.child == "on", args.device)
        print(json.dumps(result))
        return 0
    from stackform.specs import load_spec

    load_spec(args.spec, args.overrides)  # a bad spec or device: one line here, not in a child
    device_of(args.device)
    results = {}
    for mode in ("off", "on"):
        cmd = [sys.executable, "-m", "stackform.assemble.bench.memory", args.spec, *args.overrides,
               "--batch", str(args.batch), "--steps", str(args.steps), "--device", args.device, "--child", mode]
        # A fixed mmap threshold makes glibc return freed tensors to the system, so the peak RSS is the
        # peak of live tensors; glibc's dynamic threshold would keep freed memory resident.
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        child = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if child.returncode:
            last = (child.stderr.strip().splitlines() or ["no output"])[-1]
            raise StackformError(f"the measuring process (activation checkpointing {mode}) failed: {last}")
        results[mode] = json.loads(child.stdout.strip().splitlines()[-1])
    off, on = results["off"], results["on"]
    mib = 2 ** 20
    print(f"{args.spec} {' '.join(args.overrides)}: batch {args.batch}, {args.steps} steps on {args.device}")
    print(f"{'activation checkpointing':<26}{'peak memory':>14}{'saved for backward':>20}")
    for mode, r in (("off", off), ("on", on)):
        print(f"{mode:<26}{r['peak'] / mib:>11.1f} MiB{r['saved'] / mib:>17.1f} MiB")
    print(f"peak memory cut by {1 - on['peak'] / off['peak']:.1%}; saved activations cut by "
          f"{1 - on['saved'] / off['saved']:.1%}")
    diff = max(abs(a - b) for a, b in zip(off["losses"], on["losses"]))
    print("losses off: " + " ".join(f"{x:.4f}" for x in off["losses"]))
    print("losses on:  " + " ".join(f"{x:.4f}" for x in on["losses"]))
    print(f"largest loss difference: {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_script(main))
