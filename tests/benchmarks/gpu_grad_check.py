"""Do the gradients of the compiled training loss reach the model on CUDA? (a diagnostic, not a test)

    python tests/benchmarks/gpu_grad_check.py [--cpu] [--layers 2] [--batch 8] [--seq 1024]

The GPU round of 2026-12-04 trained GPT-2 small with ``train.compile=true`` on an H200 and logged a
gradient norm of exactly 0 at every step (the loss never moved), while the uncompiled tiny specs
learned: the model and the fused loss compiled as one graph (the default then) gave the eager loss
but all-zero gradients on CUDA, in bf16 and fp32 (on the CPU they are right). This prints, for the
gpt2 spec (``--layers`` layers, full width and vocabulary, no dropout), one backward step each
way: eager; ``loss_function(compile=True)`` (what ``train.compile: true`` runs: the model compiled,
the fused loss eager); and the one graph. With ``--all`` also fp32, the model built on the device
(as ``stackform bench`` does) and a second model through the same compiled code. Each line: the
loss, how many parameters got no gradient, the gradient norm, the largest difference from eager.
"""

from __future__ import annotations

import argparse
import time

import torch

from stackform.assemble import assemble
from stackform.assemble.train.loss import loss_function
from stackform.specs import load_spec


def grads(model: torch.nn.Module) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.detach().float().clone() for p in model.parameters()]


def one_step(model, spec, batch, how: str, amp: bool, device: torch.device, reset: bool = True):
    """``how``: eager; default (``loss_function(compile=True)``, what ``train.compile: true`` runs);
    one-graph (the model and the fused loss compiled together, the default until 2026-12-04)."""
    if reset:
        torch._dynamo.reset()
    model.zero_grad(set_to_none=True)
    fn = loss_function(model, model, spec, compile=how == "default")
    if how == "one-graph":
        fn = torch.compile(fn)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        total, n = fn(batch)
    loss = total / n
    loss.backward()
    return loss.item(), grads(model)


def report(label: str, loss: float, g: list, ref: list | None, t: float) -> None:
    missing = sum(x is None for x in g)
    norm = torch.sqrt(sum((x ** 2).sum() for x in g if x is not None) or torch.zeros(())).item()
    diff = ""
    if ref is not None:
        worst = max(((a - b).abs().max() / (b.abs().max() + 1e-12)).item()
                    for a, b in zip(g, ref) if a is not None and b is not None) if missing < len(g) else float("nan")
        diff = f", largest relative difference from eager {worst:.2e}"
    print(f"{label:<46} loss {loss:.4f}, parameters without gradient {missing}/{len(g)}, "
          f"gradient norm {norm:.4f}{diff} ({t:.0f} s)", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--all", action="store_true", help="also fp32, a second model, a model built on the device")
    args = p.parse_args()
    device = torch.device("cpu" if args.cpu else "cuda")
    spec = load_spec("gpt2", [f"model.n_layers={args.layers}", "model.dropout=0", "model.attention.dropout=0"])
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 256, (args.batch, args.seq + 1), generator=g)
    batch = {"input_ids": idx[:, :-1].to(device), "labels": idx[:, 1:].to(device)}

    def moved() -> torch.nn.Module:  # as `stackform train` builds it: on the CPU, then moved
        m = assemble(spec, seed=0).to(device)
        m.check_inputs = False
        return m.train()

    def built() -> torch.nn.Module:  # as `stackform bench` builds it: on the device
        m = assemble(spec, device=device, seed=0)
        m.check_inputs = False
        return m.train()

    print(f"gpt2 with {args.layers} layers, batch {args.batch} x {args.seq}, {device}, torch {torch.__version__}",
          flush=True)

    def case(label: str, make, how: str, amp: bool, ref=None, reset: bool = True):
        model = make()
        t = time.time()
        torch.manual_seed(1)
        loss, g = one_step(model, spec, batch, how, amp, device, reset)
        report(label, loss, g, ref, time.time() - t)
        return g

    ref = case("eager     bf16, built on the CPU and moved", moved, "eager", True)
    case("default   bf16, moved (train.compile: true)", moved, "default", True, ref)
    case("one-graph bf16, moved", moved, "one-graph", True, ref)
    if args.all:
        case("one-graph bf16, moved, a second model, same code", moved, "one-graph", True, ref, reset=False)
        case("one-graph bf16, built on the device", built, "one-graph", True, ref)
        ref32 = case("eager     fp32, moved", moved, "eager", False)
        case("default   fp32, moved", moved, "default", False, ref32)
        case("one-graph fp32, moved", moved, "one-graph", False, ref32)
    spec = load_spec("gpt2", [f"model.n_layers={args.layers}"])  # with the zoo spec's dropout 0.1
    case("default   bf16, moved, dropout 0.1 (no comparison)", moved, "default", True)


if __name__ == "__main__":
    main()
