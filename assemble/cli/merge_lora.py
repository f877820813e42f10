"""``stackform merge-lora RUN --out DIR``: a LoRA run's adapters folded into its weights, written as a
plain checkpoint folder (spec.yaml, model.safetensors, tokenizer.json) that generate, export-hf and
``train.init_from`` read like any other."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from stackform.registry import StackformError, printable


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="RUN_OR_CKPT", help="a run folder (or checkpoint) trained with train.lora")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write (new or empty)")


def run(args: argparse.Namespace) -> int:
    from stackform.assemble.checkpoint import atomic_write, load, save
    from stackform.assemble.tokenizers import save_tokenizer
    from stackform.assemble.train.lora import adapted_layers, merge_lora

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StackformError(f"--out {out}: not a new or empty folder")
    model = load(args.checkpoint)
    if not adapted_layers(model):
        raise StackformError(f"{args.checkpoint}: has no LoRA adapters (its spec sets no train.lora)")
    n = len(adapted_layers(model))
    merge_lora(model)
    out.mkdir(parents=True, exist_ok=True)
    if model.tokenizer is not None:
        save_tokenizer(out, model.tokenizer)
    save(model, out / "model.safetensors")
    atomic_write(out / "spec.yaml", yaml.safe_dump(model.spec.model_dump(mode="json"), sort_keys=False).encode())
    print(printable(f"merged {n} adapters: wrote {out}/model.safetensors, {out}/spec.yaml"))
    return 0
