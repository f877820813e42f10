"""KV-cache greedy decoding: stackform's ``generate`` against Hugging Face ``generate`` on the same weights.

    python -m stackform.assemble.bench.generation [--device cpu] [--new 256] [--batches 1 8]

A small GPT-2-shaped stackform model is exported to a Hugging Face folder with
``export_hf`` and loaded with transformers (the optional ``hf`` extra); both then decode
greedily from the same prompt, taking turns, several rounds. Prints tokens/s of each, the
ratio, and whether both produced the same tokens.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from stackform.assemble import assemble, export_hf
from stackform.assemble.bench import device_of, positive_int, run_script
from stackform.assemble.generation import generate

SHAPE = ["model.d_model=256", "model.n_heads=4", "model.n_layers=4", "model.ffn.hidden=1024",
         "model.vocab_size=1024", "model.bos_id=1023", "model.eos_id=1023", "model.max_len=512", "model.dropout=0", "model.attention.dropout=0"]


def _time(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stackform.assemble.bench.generation", description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--new", type=positive_int, default=256, help="tokens to generate")
    p.add_argument("--batches", type=positive_int, nargs="+", default=[1, 8])
    p.add_argument("--rounds", type=positive_int, default=5)
    p.add_argument("--threads", type=positive_int)
    args = p.parse_args(argv)
    from transformers import GPT2LMHeadModel

    if args.threads:
        torch.set_num_threads(args.threads)
    device = device_of(args.device)
    ours = assemble("gpt2", overrides=SHAPE, seed=0).to(device).eval()
    with tempfile.TemporaryDirectory() as folder:
        export_hf(ours, folder)
        theirs = GPT2LMHeadModel.from_pretrained(folder, attn_implementation="sdpa").to(device).eval()
    eos = ours.spec.model.eos_id
    print(f"gpt2-shaped: d_model 256 x 4 layers, vocab 1024, {ours.num_parameters():,} parameters; "
          f"greedy, {args.new} new tokens, {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'batch':>5}{'stackform tok/s':>17}{'HF tok/s':>11}{'ratio':>8}{'same tokens':>13}")
    for batch in args.batches:
        prompt = torch.randint(0, 1000, (batch, 8), generator=torch.Generator().manual_seed(batch)).to(device)
        run_ours = lambda: generate(ours, prompt, args.new, temperature=0.0, eos_id=-1)  # noqa: E731
        run_theirs = lambda: theirs.generate(prompt, attention_mask=torch.ones_like(prompt),  # noqa: E731
                                             max_new_tokens=args.new, min_new_tokens=args.new, do_sample=False,
                                             pad_token_id=eos, eos_token_id=None)
        with torch.no_grad():
            same = torch.equal(run_ours(), run_theirs())
            times: dict[str, list[float]] = {"ours": [], "theirs": []}
            for _ in range(args.rounds):
                times["ours"].append(_time(run_ours, device))
                times["theirs"].append(_time(run_theirs, device))
        ours_tps = batch * args.new / statistics.median(times["ours"])
        theirs_tps = batch * args.new / statistics.median(times["theirs"])
        print(f"{batch:>5}{ours_tps:>17,.0f}{theirs_tps:>11,.0f}{ours_tps / theirs_tps:>7.2f}x{str(same):>13}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_script(main))
