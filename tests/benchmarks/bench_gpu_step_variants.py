"""Variants of stackform's compiled training step against the compiled hand-written GPT (not a test).

    python tests/benchmarks/bench_gpu_step_variants.py [--only NAME,NAME] [--budget 400] [--top 10]
    python tests/benchmarks/bench_gpu_step_variants.py --cpu        # a tiny dry run on the CPU

The GPT-2 spec at batch 16 x 1024 on CUDA (bf16 autocast). Each variant is built, compiled and
warmed up, timed for 10 steps and profiled for 2 (GPU time per step by kernel family, then the
top kernels); at the end all variants take turns for 3 more timed repeats and a table prints
their median tokens/s against the hand-written model. This is how the "what made the
difference" table of docs/performance.md was measured. Variants that fail are reported and
skipped; variants that would start after ``--budget`` seconds are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import time
import traceback
import types

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from stackform.assemble import assemble
from stackform.assemble.bench.contestants import reference_step, stackform_step
from stackform.assemble.bench.harness import Contestant
from stackform.assemble.bench.report import table
from stackform.assemble.train.linear_ce import linear_cross_entropy
from stackform.assemble.train.loss import loss_function
from stackform.assemble.train.optim import build_optimizer
from stackform.specs import load_spec

TUNED = {"coordinate_descent_tuning": True}
TINY = ["model.n_layers=2", "model.d_model=64", "model.n_heads=4", "model.ffn.hidden=128", "model.max_len=64"]


def cudnn_first():
    """SDPA with cuDNN attention asked for first (torch >= 2.6 takes a priority order; the math
    path last, so the CPU dry run works)."""
    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
             SDPBackend.MATH]
    try:
        return sdpa_kernel(order, set_priority=True)
    except TypeError:
        return sdpa_kernel([SDPBackend.CUDNN_ATTENTION])


def flash_only():
    """SDPA restricted to the FlashAttention-2 kernel (and the math path, so the CPU dry run works)."""
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.MATH])


ATTENTION = {None: contextlib.nullcontext, "cudnn": cudnn_first, "flash": flash_only}


def fresh(fn, label: str):
    """``fn`` with a copy of its code object: torch.compile of it compiles anew (dynamo caches compiled
    code per code object, whatever the compile settings or the SDPA backend in force)."""
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{label.replace('-', '_')}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)


class Setup:
    def __init__(self, cpu: bool, batch: int):
        self.cpu = cpu
        self.device = torch.device("cpu" if cpu else "cuda")
        self.spec = load_spec("gpt2", TINY if cpu else [])
        self.seq = 64 if cpu else 1024
        g = torch.Generator().manual_seed(0)
        idx = torch.randint(0, self.spec.model.vocab_size, (batch, self.seq + 1), generator=g).to(self.device)
        self.data = (idx[:, :-1].contiguous(), idx[:, 1:].contiguous())

    def sync(self) -> None:
        if not self.cpu:
            torch.cuda.synchronize()

    def one_graph(self, label: str, full_ce: bool = False, attention: str | None = None, mode: str | None = None,
                  chunk_rows: int | None = None, inductor: dict | None = None) -> Contestant:
        """stackform's model and its loss compiled as one function; ``inductor``: torch._inductor.config
        settings in force while the graph compiles (its first step)."""
        model = assemble(self.spec, device=self.device, seed=0)
        model.check_inputs = False
        model.train()
        head = model.head

        def loss_fn(i: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            h = head.features(model(i, logits=False).hidden)  # [b, t, d]
            if full_ce:  # full logits over the vocabulary padded to a multiple of 128
                vocab = head.weight.shape[0]
                pad = (-vocab) % 128
                logits = F.linear(h, F.pad(head.weight, (0, 0, 0, pad))).float()
                logits = logits.masked_fill(torch.arange(vocab + pad, device=i.device) >= vocab, float("-inf"))
                return F.cross_entropy(logits.view(-1, vocab + pad), y.view(-1))
            total, n = linear_cross_entropy(h.reshape(-1, h.shape[-1]), head.weight, head.bias, y.reshape(-1),
                                            chunk_rows=chunk_rows)
            return total / n

        graphs = mode == "reduce-overhead" and not self.cpu
        run = torch.compile(fresh(loss_fn, label), mode=mode if graphs or mode != "reduce-overhead" else None)
        opt = build_optimizer(model, self.spec.train.optimizer, self.device)
        backend = ATTENTION[attention]
        i, y = self.data
        first = [bool(inductor)]

        def step() -> None:
            if first[0]:  # compile happens in the first step: the settings apply then
                first[0] = False
                import torch._inductor.config as config

                with config.patch(inductor):
                    return step()
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with backend():
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=not self.cpu):
                    loss = run(i, y)
                loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return Contestant(label, step, model.num_parameters(), i.numel())

    def default_path(self, label: str, attention: str | None = None, mode: str = "default",
                     inductor: dict | None = None) -> Contestant:
        """``loss_function``'s loss compiled as one graph (``torch.compile(loss, mode=mode)``, what
        ``train.compile: true`` ran until 2026-12-04, when this was found to give all-zero gradients on
        CUDA: docs/performance.md), with one setting changed: the SDPA backend, the compile mode, or
        ``torch._inductor.config`` settings in force while the graph compiles (its first step). The loss is compiled from a fresh copy of its code: dynamo keeps
        compiled code per Python code object, and would otherwise reuse the first variant's graph
        (the GPU round of 2026-12-04 measured the default path five times that way)."""
        model = assemble(self.spec, device=self.device, seed=0)
        model.check_inputs = False
        model.train()
        loss = fresh(loss_function(model, model, self.spec, compile=False), label)
        run = torch.compile(loss, mode=mode)
        graphs = mode == "reduce-overhead" and not self.cpu
        opt = build_optimizer(model, self.spec.train.optimizer, self.device)
        backend, first = ATTENTION[attention], [bool(inductor)]
        i, y = self.data
        data = {"input_ids": i, "labels": y}

        def step() -> None:
            if first[0]:
                first[0] = False
                import torch._inductor.config as config

                with config.patch(inductor):
                    return step()
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with backend():
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=not self.cpu):
                    total, n = run(data)
                (total / n).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return Contestant(label, step, model.num_parameters(), i.numel())

    def reference(self, cudnn: bool = False) -> Contestant:
        c = reference_step(self.spec, self.data, self.device, not self.cpu, "default")
        if cudnn:
            inner = c.step

            def step() -> None:
                with cudnn_first():
                    inner()

            c.step, c.name = step, "hand+cudnn"
        return c

    def variants(self) -> list[tuple[str, object]]:
        s = self
        return [
            ("hand-written", lambda: s.reference()),
            ("stackform", lambda: stackform_step(s.spec, s.data, s.device, not s.cpu, "default")),
            ("one-graph", lambda: s.one_graph("one-graph")),
            ("one-graph-cudnn", lambda: s.one_graph("one-graph-cudnn", attention="cudnn")),
            ("one-graph-full-ce", lambda: s.one_graph("one-graph-full-ce", full_ce=True)),
            ("hand+cudnn", lambda: s.reference(cudnn=True)),
            ("one-graph-cg", lambda: s.one_graph("one-graph-cg", mode="reduce-overhead")),
            ("one-graph-cg-4k-tuned", lambda: s.one_graph("one-graph-cg-4k-tuned", mode="reduce-overhead",
                                                          chunk_rows=4096, inductor=TUNED)),
            # Candidates not yet measured on a GPU (the next run's list: docs/performance.md)
            ("one-graph-flash", lambda: s.one_graph("one-graph-flash", attention="flash")),
            ("one-graph-4k", lambda: s.one_graph("one-graph-4k", chunk_rows=4096)),
            ("one-graph-tuned", lambda: s.one_graph("one-graph-tuned", inductor=TUNED)),
            ("one-graph-combo", lambda: s.one_graph("one-graph-combo", inductor={"combo_kernels": True})),
            ("one-graph-no-persistent", lambda: s.one_graph(
                "one-graph-no-persistent", inductor={"triton.persistent_reductions": False})),
            ("one-graph-aggressive", lambda: s.one_graph("one-graph-aggressive",
                                                         inductor={"aggressive_fusion": True})),
            ("one-graph-autotune", lambda: s.one_graph("one-graph-autotune", mode="max-autotune-no-cudagraphs")),
            # The same candidates on the default path itself (loss_function, as `stackform train` compiles it):
            # each differs from "stackform" in one setting only
            ("stackform-flash", lambda: s.default_path("stackform-flash", attention="flash")),
            ("stackform-aggressive", lambda: s.default_path("stackform-aggressive",
                                                            inductor={"aggressive_fusion": True})),
            ("stackform-no-persistent", lambda: s.default_path(
                "stackform-no-persistent", inductor={"triton.persistent_reductions": False})),
            ("stackform-combo", lambda: s.default_path("stackform-combo", inductor={"combo_kernels": True})),
            ("stackform-tuned", lambda: s.default_path("stackform-tuned", inductor=TUNED)),
            ("stackform-cg", lambda: s.default_path("stackform-cg", mode="reduce-overhead")),
        ]


def timed(setup: Setup, c: Contestant, steps: int = 10) -> float:
    setup.sync()
    start = time.perf_counter()
    for _ in range(steps):
        c.step()
    setup.sync()
    return steps * c.tokens_per_step / (time.perf_counter() - start)


def family(kernel: str) -> str:
    n = kernel.lower()
    if "sdpa" in n or "cudnn" in n or "flash" in n or "fmha" in n:
        return "attention"
    if any(s in n for s in ("gemm", "nvjet", "cutlass", "xmma", "sm90_")):
        return "matmul"
    if "adam" in n:
        return "adamw"
    return "triton" if "triton" in n else "other"


def profile(setup: Setup, c: Contestant, top: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CUDA]) as p:
        for _ in range(2):
            c.step()
        setup.sync()
    events = [e for e in p.key_averages() if e.device_type.name == "CUDA"]
    families: dict[str, float] = {}
    for e in events:
        families[family(e.key)] = families.get(family(e.key), 0.0) + e.self_device_time_total / 2e3
    busy = sum(families.values())
    print(f"   [{c.name}] GPU busy {busy:.2f} ms/step: "
          + ", ".join(f"{k} {v:.2f}" for k, v in sorted(families.items(), key=lambda kv: -kv[1])))
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:top]:
        print(f"      {e.self_device_time_total / 2e3:7.3f} ms x{e.count // 2:<4} {e.key[:90]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="a tiny dry run on the CPU (no profile)")
    p.add_argument("--batch", type=int, help="sequences per step (default 16; 2 with --cpu)")
    p.add_argument("--only", default="", help="comma-separated variant names")
    p.add_argument("--budget", type=float, default=400.0, help="start no variant after this many seconds")
    p.add_argument("--top", type=int, default=10, help="kernels listed per profile (0: no profile)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds of all variants in turns at the end")
    args = p.parse_args()
    start = time.time()
    setup = Setup(args.cpu, args.batch or (2 if args.cpu else 16))
    if not args.cpu:
        torch.backends.cuda.matmul.allow_tf32 = True
    device_name = "cpu" if args.cpu else torch.cuda.get_device_name(setup.device)
    print(f"variants: {device_name}, torch {torch.__version__}, batch {setup.data[0].shape[0]}", flush=True)
    chosen = [v for v in setup.variants() if not args.only or v[0] in args.only.split(",")]
    done = []
    for label, make in chosen:
        if time.time() - start > args.budget:
            print(f"-- skipped {label}: past the budget", flush=True)
            continue
        try:
            t = time.time()
            c = make()
            for _ in range(3):
                c.step()
            setup.sync()
            c.samples.append(timed(setup, c))
            print(f"-- {label}: {c.samples[-1]:,.0f} tokens/s (build, compile and warm-up {time.time() - t:.0f} s)",
                  flush=True)
            if not args.cpu and args.top > 0:
                profile(setup, c, args.top)
            done.append(c)
        except Exception as e:  # noqa: BLE001 - a failed variant is reported, the others go on
            print(f"-- {label} FAILED: {type(e).__name__}: {str(e)[:300]}", flush=True)
            traceback.print_exc(limit=3)
    for r in range(args.repeats):
        for c in (done if r % 2 else list(reversed(done))):
            c.samples.append(timed(setup, c))
    if done:
        print(table(done, setup.spec, setup.seq, None if args.cpu else device_name))
    print(f"total {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
