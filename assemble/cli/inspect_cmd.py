"""``stackform inspect SPEC_OR_CKPT``: per-block table, totals and FLOPs per token."""

from __future__ import annotations

import argparse
import os

from stackform.assemble.build import assemble
from stackform.assemble.checkpoint import read_checkpoint, spec_of
from stackform.assemble.inspect import block_rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC_OR_CKPT", help="spec file, zoo name, checkpoint or run folder")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. model.n_layers=2")
    p.add_argument("--context", type=int, help="tokens of context for attention FLOPs (default max_len)")
    p.add_argument("--all", action="store_true", help="list every block, not a summary of repeated layers")


def _human(n: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def _load_spec(name: str):
    if name.endswith(".safetensors") or os.path.isdir(name):
        _, metadata = read_checkpoint(name)
        return spec_of(metadata, name)
    return name


def run(args: argparse.Namespace) -> int:
    model = assemble(_load_spec(args.spec), overrides=args.overrides, device="meta")
    rows = block_rows(model, args.context)
    spec = model.spec
    print(f"{spec.name}: {spec.model.kind}, d_model {spec.model.d_model}, {spec.model.n_heads} heads, "
          f"vocab {spec.model.vocab_size}, max_len {spec.model.max_len}")
    print(f"{'block':<44} {'type':<22} {'params':>10} {'FLOPs/token':>12}")
    shown = 0
    for row in rows:
        layer = row.path.split(".layers.")
        if not args.all and len(layer) > 1 and not layer[1].startswith("0."):
            continue  # layers repeat: show layer 0, count all
        print(f"{row.path:<44} {row.type:<22} {_human(row.params):>10} {_human(row.flops):>12}")
        shown += 1
    if not args.all and shown < len(rows):
        print(f"({len(rows) - shown} more blocks in layers 1.. not shown; --all lists them)")
    total = model.num_parameters()
    embed = sum(r.params for r in rows if r.type == "embedding" or r.path.endswith("positional"))
    forward = sum(r.flops for r in rows)
    print(f"parameters: {total:,} ({_human(total)}), without embeddings {total - embed:,}")
    print(f"FLOPs per token: forward {_human(forward)}, training (x3) {_human(3 * forward)} "
          f"at context {args.context or spec.model.max_len}")
    return 0
