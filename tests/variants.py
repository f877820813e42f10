"""Tiny spec variants generated from the registry: every block in every model kind where it fits."""

from __future__ import annotations

import copy

from stackform import registry

VOCAB, MAX_LEN, PAD = 23, 12, 0


def base_spec(kind: str) -> dict:
    """A tiny spec of ``kind`` (encoder | decoder | encoder_decoder)."""
    return {
        "name": f"tiny-{kind}",
        "model": {
            "kind": kind, "vocab_size": VOCAB, "max_len": MAX_LEN, "d_model": 32, "n_heads": 4,
            "n_layers": 2, "dropout": 0.0, "pad_id": PAD, "bos_id": 1, "eos_id": 2,
        },
    }


def _block(entry: registry.Entry) -> dict:
    return {"type": entry.name, **registry.example_params(entry)}


# Which spec field each kind fills, and in which model kinds a block of that kind makes sense.
FIELD = {"attention": "attention", "positional": "positional", "norm": "norm", "residual": "residual", "ffn": "ffn",
         "layer": "layer"}
ALL_KINDS = ("encoder", "decoder", "encoder_decoder")


def variants() -> list[tuple[str, dict]]:
    """(id, spec dict) for every registered block in every model kind where it fits."""
    out = []
    for entry in registry.list_blocks():
        if entry.kind == "mask":
            for kind, masks in mask_variants(entry):
                spec = base_spec(kind)
                spec["model"]["mask"] = masks
                out.append((f"mask-{entry.name}-{kind}", spec))
            continue
        field = FIELD.get(entry.kind)
        if field is None:
            continue  # a kind added by a plugin without a model field
        for kind in ALL_KINDS:
            spec = base_spec(kind)
            spec["model"][field] = _block(entry)
            out.append((f"{entry.kind}-{entry.name}-{kind}", spec))
    return out


def mask_variants(entry: registry.Entry) -> list[tuple[str, list]]:
    block = _block(entry)
    if entry.name == "causal":
        return [("decoder", [block]), ("encoder", [block])]
    if entry.name == "padding":
        return [("encoder", [block]), ("decoder", ["causal", block])]
    if entry.name == "prefix_lm":
        return [("decoder", [block])]
    return [("decoder", ["causal", block]), ("encoder", ["padding", block])]


def is_causal(spec: dict) -> bool:
    """Whether the (decoder) spec's masks make position t blind to t+1 everywhere."""
    model = spec["model"]
    if model["kind"] == "encoder":
        return False
    masks = model.get("mask")
    if masks is None:
        return True
    names = [m if isinstance(m, str) else m["type"] for m in masks]
    return "causal" in names


def with_(spec: dict, **model_fields) -> dict:
    spec = copy.deepcopy(spec)
    spec["model"].update(model_fields)
    return spec
