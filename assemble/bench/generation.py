"""KV-cache greedy decoding: stackform's ``generate`` against Hugging Face ``generate`` on the same weights.

    python -m stackform.assemble.bench.generation [--device cpu] [--new 256] [--batches 1 8]
    python -m stackform.assemble.bench.generation --shape gpt2 --device cuda --compile --hf-static

A GPT-2-shaped stackform model (``--shape small``: d_model 256 x 4 layers, vocab 1024;
``--shape gpt2``: the gpt2 zoo spec, 124M parameters, without dropout) with random weights
is exported to a Hugging Face folder with ``export_hf`` and loaded with transformers (the
optional ``hf`` extra); both then decode greedily from the same prompt, taking turns,
several rounds. ``--compile`` adds stackform with ``model.compile(dynamic=True)``;
``--hf-static`` adds Hugging Face with its static cache (``cache_implementation="static"``,
which transformers compiles itself on CUDA, with CUDA graphs). Each contestant's first call
(compilation included) is reported apart and not timed. Prints tokens/s of each (median and
spread of the rounds), the ratio of stackform's best to Hugging Face's best, and whether each
produced the same tokens as stackform's eager ``generate``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Callable

import torch

from stackform.assemble import assemble, export_hf
from stackform.assemble.bench import device_of, positive_int, run_script
from stackform.assemble.generation import generate

NO_DROPOUT = ["model.dropout=0", "model.attention.dropout=0"]
SHAPES = {
    "small": ["model.d_model=256", "model.n_heads=4", "model.n_layers=4", "model.ffn.hidden=1024",
              "model.vocab_size=1024", "model.bos_id=1023", "model.eos_id=1023", "model.max_len=512", *NO_DROPOUT],
    "gpt2": NO_DROPOUT,  # the zoo spec as it is: 12 x 768, vocab 50257, context 1024
    "tiny": ["model.d_model=64", "model.n_heads=4", "model.n_layers=2", "model.ffn.hidden=128",  # dry runs
             "model.vocab_size=256", "model.bos_id=255", "model.eos_id=255", "model.max_len=320", *NO_DROPOUT],
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _time(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[float, torch.Tensor]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def _contestants(args, ours, theirs, prompt, eos: int) -> dict[str, Callable[[], torch.Tensor]]:
    new = args.new
    runs = {"stackform": lambda: generate(ours, prompt, new, temperature=0.0, eos_id=-1)}

    def hf(**extra) -> Callable[[], torch.Tensor]:
        return lambda: theirs.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new,
                                       min_new_tokens=new, do_sample=False, pad_token_id=eos, eos_token_id=None,
                                       **extra)

    if args.compile:
        runs["stackform+compile"] = lambda: generate(args.compiled, prompt, new, temperature=0.0, eos_id=-1)
    runs["hf"] = hf()
    if args.hf_static:
        runs["hf-static"] = hf(cache_implementation="static")
    return runs


def _table_row(batch: int, name: str, times: list[float], first: float, same: str, new: int) -> str:
    rates = [batch * new / t for t in times]
    median = statistics.median(rates)
    spread = (max(rates) - min(rates)) / 2 / median
    return f"{batch:>5}  {name:<19}{median:>11,.0f}{spread:>8.1%}{1e3 * statistics.median(times) / new:>10.3f}" \
           f"{first:>9.1f}{same:>7}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stackform.assemble.bench.generation", description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--shape", choices=sorted(SHAPES), default="small")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="weights and activations of both")
    p.add_argument("--new", type=positive_int, default=256, help="tokens to generate")
    p.add_argument("--batches", type=positive_int, nargs="+", default=[1, 8])
    p.add_argument("--rounds", type=positive_int, default=5)
    p.add_argument("--threads", type=positive_int)
    p.add_argument("--compile", action="store_true", help="add stackform with model.compile(dynamic=True)")
    p.add_argument("--hf-static", action="store_true", help="add Hugging Face with its static cache (compiled on CUDA)")
    args = p.parse_args(argv)
    from transformers import GPT2LMHeadModel
    from transformers import __version__ as hf_version

    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = device_of(args.device), DTYPES[args.dtype]
    ours = assemble("gpt2", overrides=SHAPES[args.shape], seed=0).to(device).eval()
    with tempfile.TemporaryDirectory() as folder:
        export_hf(ours, folder)
        theirs = GPT2LMHeadModel.from_pretrained(folder, attn_implementation="sdpa").to(device, dtype).eval()
    ours = ours.to(dtype)
    if args.compile:
        args.compiled = assemble("gpt2", overrides=SHAPES[args.shape], seed=0).to(device, dtype).eval()
        args.compiled.compile(dynamic=True)
    m = ours.spec.model
    eos = m.eos_id
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"gpt2-shaped ({args.shape}): d_model {m.d_model} x {m.n_layers} layers, vocab {m.vocab_size}, "
          f"{ours.num_parameters():,} parameters, {args.dtype}; greedy, {args.new} new tokens, {name}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, transformers {hf_version}", flush=True)
    best: dict[int, dict[str, float]] = {}
    lines = [f"{'batch':>5}  {'contestant':<19}{'tokens/s':>11}{'spread':>8}{'ms/step':>10}{'first s':>9}{'same':>7}"]
    for batch in args.batches:
        prompt = torch.randint(0, min(1000, m.vocab_size - 1), (batch, 8),
                               generator=torch.Generator().manual_seed(batch)).to(device)
        runs = _contestants(args, ours, theirs, prompt, eos)
        times: dict[str, list[float]] = {k: [] for k in runs}
        first: dict[str, float] = {}
        same: dict[str, str] = {}
        with torch.no_grad():
            reference = None
            for key, run in list(runs.items()):
                try:
                    first[key], out = _time(run, device)  # compiles, where it compiles
                except Exception as exc:  # noqa: BLE001 - report the contestant, keep the others
                    print(f"  batch {batch}: {key} failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
                    del runs[key], times[key]
                    continue
                reference = out if reference is None else reference
                same[key] = f"{(out == reference).float().mean().item():.0%}"
                print(f"  batch {batch}: {key} first call {first[key]:.1f} s", flush=True)
            for r in range(args.rounds):
                for key in (list(runs) if r % 2 == 0 else list(reversed(runs))):  # no one always goes first
                    times[key].append(_time(runs[key], device)[0])
        for key in runs:
            lines.append(_table_row(batch, key, times[key], first[key], same[key], args.new))
            best.setdefault(batch, {})[key] = batch * args.new / statistics.median(times[key])
        if runs:
            print("\n".join(lines[-len(runs):]), flush=True)
    print("\n".join(lines))
    for batch, rates in best.items():
        ours_best = max((v, k) for k, v in rates.items() if k.startswith("stackform"))
        hf = [(v, k) for k, v in rates.items() if k.startswith("hf")]
        if hf:
            theirs_best = max(hf)
            print(f"batch {batch}: {ours_best[1]} / {theirs_best[1]} = {ours_best[0] / theirs_best[0]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_script(main))
