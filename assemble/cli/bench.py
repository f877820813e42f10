"""``stackform bench``: training-step throughput of stackform vs hand-written PyTorch, side by side."""

from __future__ import annotations

import argparse
import os

import torch

from stackform.assemble.bench import device_of, nonnegative_int, positive_int
from stackform.registry import StackformError, printable

GPT_SHAPE = ["model.positional=learned", "model.residual=pre", "model.norm=layernorm", "model.attention=mha"]
COMPILE_MODES = ["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
PRESETS = {
    # name: (spec, overrides, batch, seq). The reference is a GPT-2-style model (learned positions,
    # GELU MLP, pre-norm), so the presets pin those blocks whatever the zoo spec uses today.
    "realistic": ("gpt-tiny", GPT_SHAPE + ["model.ffn={type: mlp, activation: gelu, hidden: 1024}",
                                           "model.d_model=256", "model.n_heads=4", "model.n_layers=4",
                                           "model.max_len=256"], 8, 256),
    "tiny": ("gpt-tiny", GPT_SHAPE + ["model.ffn={type: mlp, activation: gelu, hidden: 256}", "model.d_model=64",
                                      "model.n_heads=4", "model.n_layers=2", "model.max_len=16"], 8, 16),
    "gpt2": ("gpt2", [], 16, 1024),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="a decoder spec (default: the preset's)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--preset", choices=sorted(PRESETS), default="realistic")
    p.add_argument("--device", default="cpu", help="cpu or cuda (bf16 autocast and MFU on cuda)")
    p.add_argument("--batch", type=positive_int, help="sequences per step (default: the preset's)")
    p.add_argument("--seq", type=positive_int, help="tokens per sequence (default: the preset's)")
    p.add_argument("--steps", type=positive_int, default=10, help="steps per timed repeat")
    p.add_argument("--repeats", type=positive_int, default=5, help="alternating repeats")
    p.add_argument("--warmup", type=nonnegative_int, default=3, help="untimed steps first")
    p.add_argument("--compile", nargs="?", const="default", default=None, choices=COMPILE_MODES, metavar="MODE",
                   help="torch.compile every model; MODE: " + ", ".join(COMPILE_MODES) + " (default: default)")
    p.add_argument("--peers", action="store_true", help="also x-transformers and Hugging Face GPT-2 if installed; "
                   "with --variants: Hugging Face's Mistral, BLOOM and T5 against the same variant")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--variants", action="store_true",
                   help="masks and position biases (alibi, T5 bias, sliding window, prefix LM, padding) against "
                        "the plain causal path: step time and peak memory ratios (default --seq: 1024 and 4096 "
                        "on cpu, 8192 on cuda)")
    p.add_argument("--plain-ce", action="store_true",
                   help="also stackform's model with the reference's full-logits loss (to separate model and loss)")


def _warn_if_busy() -> None:
    from stackform.assemble.train.machine import busy_warning

    warning = busy_warning()
    if warning:
        print(warning)


def run(args: argparse.Namespace) -> int:
    from stackform.assemble.bench.contestants import (peer_steps, reference_step, stackform_plain_ce_step,
                                                      stackform_step)
    from stackform.assemble.bench.harness import run_alternating
    from stackform.assemble.bench.report import table
    from stackform.assemble.train import machine
    from stackform.specs import load_spec

    if args.variants:
        return run_variants_cli(args)
    name, overrides, batch, seq = PRESETS[args.preset]
    if args.spec and "=" in args.spec:  # `bench --preset tiny model.d_model=32`: an override, not a spec
        args.spec, args.overrides = None, [args.spec, *args.overrides]
    spec = load_spec(args.spec or name, overrides + args.overrides)
    batch, seq = args.batch or batch, args.seq or seq
    if seq > spec.model.max_len:
        raise StackformError(f"--seq {seq} is longer than the spec's max_len {spec.model.max_len}")
    device = device_of(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16 = device.type == "cuda"
    if bf16:
        torch.backends.cuda.matmul.allow_tf32 = True
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, min(spec.model.vocab_size, 256), (batch, seq + 1), generator=g).to(device)
    data = (idx[:, :-1].contiguous(), idx[:, 1:].contiguous())
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    print(printable(f"bench: {spec.name} d_model {spec.model.d_model} x {spec.model.n_layers} layers, batch {batch}, seq {seq}, "
          f"{device_name or 'cpu'} ({machine.describe()}), torch {torch.__version__}, "
          f"{'bf16' if bf16 else 'fp32'}, compile {args.compile or 'off'}"))
    _warn_if_busy()
    try:
        reference = reference_step(spec, data, device, bf16, args.compile)
    except ValueError as exc:  # the hand-written reference holds one architecture
        raise StackformError(f"bench: {spec.name}: {exc}; bench a GPT-shaped decoder (see the presets)") from None
    contestants = [reference, stackform_step(spec, data, device, bf16, args.compile)]
    if contestants[0].params != contestants[1].params:
        raise StackformError(f"parameter counts differ: reference {contestants[0].params:,}, "
                             f"stackform {contestants[1].params:,}")
    if args.plain_ce:
        contestants.append(stackform_plain_ce_step(spec, data, device, bf16, args.compile))
    if args.peers:
        contestants += peer_steps(spec, data, device, bf16, args.compile)
    run_alternating(contestants, device, args.steps, args.repeats, args.warmup)
    print(printable(table(contestants, spec, seq, device_name), keep="\n"))
    return 0


def run_variants_cli(args: argparse.Namespace) -> int:
    from stackform.assemble.bench.variants import run_variants, table

    if args.spec or args.overrides:
        raise StackformError("bench --variants: takes no spec or overrides (it benches its own decoder)")
    device = device_of(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    seqs = [args.seq] if args.seq else ([8192] if device.type == "cuda" else [1024, 4096])
    if args.peers and device.type != "cuda" and not args.seq:
        raise StackformError("bench --variants --peers: on cpu give --seq (a short one, e.g. --seq 256: a dry run "
                             "of the Hugging Face comparison, which is meant for --device cuda)")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"bench --variants: decoder d_model 256 x 2 layers, 8 heads, batch 1, forward + backward, "
          f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'} "
          f"({torch.get_num_threads()} threads), torch {torch.__version__}, load average {load}")
    _warn_if_busy()
    rows = run_variants(seqs, device, args.repeats, args.warmup, memory=True, with_peers=args.peers)
    print(table(rows))
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0
