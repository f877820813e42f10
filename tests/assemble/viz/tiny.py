"""Tiny models and fake run folders for the picture tests."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

from stackform.assemble import assemble, save
from variants import base_spec

PAIRS = {"task": "seq2seq", "data": {"type": "builtin", "name": "numbers"}}


def tiny_spec(kind: str, **model_fields) -> dict:
    """A tiny spec of ``kind`` whose train section fits it; byte vocabulary so text can be read."""
    spec = copy.deepcopy(base_spec(kind))
    spec["model"].update(vocab_size=259, pad_id=256, bos_id=257, eos_id=258, max_len=24, d_model=16, n_heads=2)
    spec["model"].update(model_fields)
    if kind == "encoder_decoder":
        spec["train"] = dict(PAIRS)
    return spec


def tiny_model(kind: str, seed: int = 0, **model_fields):
    return assemble(tiny_spec(kind, **model_fields), seed=seed).eval()


def fake_run(folder: Path, overrides: list[str], decay: float, steps: int = 40, kind: str = "decoder") -> Path:
    """A run folder: a tiny checkpoint (a decoder unless ``kind``) and a metrics.jsonl with falling losses."""
    model = assemble(tiny_spec(kind), overrides=overrides, seed=0)
    save(model, folder / "model.safetensors")
    with open(folder / "metrics.jsonl", "w") as handle:
        for step in range(0, steps + 1, 5):
            loss = 5.0 * math.exp(-step / decay) + 1.0
            handle.write(json.dumps({"step": step, "split": "train", "loss": loss, "lr": 1e-3,
                                     "tokens_per_s": 1000.0, "elapsed_s": step * 0.1}) + "\n")
            if step % 20 == 0:
                handle.write(json.dumps({"step": step, "split": "val", "loss": loss + 0.2, "elapsed_s": step * 0.1}) + "\n")
    return folder
