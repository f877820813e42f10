"""``stackform import-hf DIR --out OUT_DIR`` and ``stackform export-hf CKPT --out DIR``.

One module serves both commands (COMMANDS lists it twice); the parser's name tells which.
Neither needs transformers: config.json is read with json, the weights with safetensors.
"""

from __future__ import annotations

import argparse

import torch

from stackform.registry import printable

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_arguments(p: argparse.ArgumentParser) -> None:
    if p.prog.endswith("export-hf"):
        p.add_argument("checkpoint", metavar="CKPT", help="a stackform checkpoint (.safetensors) or run folder")
        p.add_argument("--out", required=True, metavar="DIR", help="the Hugging Face folder to write")
        p.add_argument("--family", help="gpt2, bert, llama, t5 or marian (default: the one that fits the spec)")
        return
    p.add_argument("folder", metavar="DIR", help="a Hugging Face model folder: config.json + model.safetensors")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="where to write spec.yaml and model.safetensors")
    p.add_argument("--name", help="the spec's name (default: the folder's name)")
    p.add_argument("--dtype", choices=sorted(DTYPES), help="weight dtype (default: the folder's)")
    p.add_argument("--overwrite", action="store_true", help="replace spec.yaml / model.safetensors already in OUT_DIR")


def run(args: argparse.Namespace) -> int:
    from stackform.assemble.interop import FamilyError, InteropError, export_hf, import_hf

    if hasattr(args, "checkpoint"):
        try:
            out = export_hf(args.checkpoint, args.out, family=args.family)
        except FamilyError as exc:  # the flag is what was wrong: name it
            raise InteropError(f"--family {exc.family}: {exc.problem}") from None
        print(printable(f"wrote {out}/config.json, {out}/model.safetensors"))
        return 0
    model = import_hf(args.folder, args.out, name=args.name, dtype=DTYPES.get(args.dtype),
                      overwrite=args.overwrite)
    spec = model.spec.model
    print(printable(f"{model.spec.name}: {spec.kind}, {model.num_parameters():,} parameters"))
    tokenizer = f", {args.out}/tokenizer.json" if getattr(model, "tokenizer", None) is not None else \
        " (no tokenizer.json in the folder: generate takes --ids)"
    print(printable(f"wrote {args.out}/spec.yaml, {args.out}/model.safetensors{tokenizer}"))
    return 0
