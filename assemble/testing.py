"""The block contract tests, shipped for plugin authors: ``check_block(kind, name)`` builds tiny
models with the block in every model kind where its kind fits and returns what fails (an empty
list: the block keeps the contract):

- shapes: logits [b, t, vocab]; gradients: every parameter gets a finite one;
- save/load: the checkpoint rebuilds the same outputs;
- causality: in a decoder, later tokens never change earlier logits;
- padding: what stands in padded source positions never changes real outputs;
- KV cache: a decoder fed one token at a time with a cache gives the full forward's logits;
- encoder-decoder pairing: every decoder layer reads the encoder output (its output changes with
  the memory) and declares a cross-attention sublayer, so a layer kind that pairs the FFN with
  the cross-attention, or drops it, is caught;
- ``compile=True``: torch.compile traces the model without graph breaks (slow on the CPU).

From your own tests: ``assert not check_block("ffn", "my_ffn")``. Or run
``pytest --pyargs stackform.assemble.testing``: it checks every registered block that does not
ship with stackform (``STACKFORM_CHECK=kind:name,...`` picks blocks, built-in ones too).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from stackform import registry

VOCAB, MAX_LEN, PAD = 23, 12, 0
# the spec field a block of each kind fills, and the model kinds it makes sense in
FIELDS = {"attention": "attention", "positional": "positional", "norm": "norm", "residual": "residual", "ffn": "ffn",
          "layer": "layer", "head": "head"}
MODEL_KINDS = ("decoder", "encoder", "encoder_decoder")


def tiny_spec(model_kind: str, kind: str, name: str, params: dict | None = None) -> dict:
    """A tiny spec of ``model_kind`` with block ``name`` of ``kind`` (its example params by default)."""
    block = {"type": name, **(params if params is not None else registry.example_params(registry.get(kind, name)))}
    model: dict[str, Any] = {"kind": model_kind, "vocab_size": VOCAB, "max_len": MAX_LEN, "d_model": 32, "n_heads": 4,
                             "n_layers": 2, "dropout": 0.0, "pad_id": PAD, "bos_id": 1, "eos_id": 2}
    if kind == "mask":
        model["mask"] = [block] if model_kind == "encoder" else ["causal", block]
    else:
        model[FIELDS[kind]] = block
    spec = {"name": f"check-{kind}-{name}", "model": model}
    if model_kind == "encoder_decoder":
        spec["train"] = {"task": "seq2seq", "data": {"type": "builtin", "name": "numbers"}}
    return spec


def _run(model, src: torch.Tensor, tgt: torch.Tensor, **kw):
    return model(src, tgt, **kw) if model.spec.model.kind == "encoder_decoder" else model(src, **kw)


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (2, 10), generator=g), torch.randint(3, VOCAB, (2, 9), generator=g)


def _shapes_and_gradients(model, src, tgt) -> list[str]:
    model.train()
    out = _run(model, src, tgt)
    want = (2, tgt.shape[1] if model.spec.model.kind == "encoder_decoder" else src.shape[1], VOCAB)
    if tuple(out.shape) != want:
        return [f"logits have shape {tuple(out.shape)}, expected {want}"]
    out.float().pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.isfinite().all())]
    model.zero_grad(set_to_none=True)
    return [f"no finite gradient reaches {', '.join(missing[:5])}"] if missing else []


def _save_load(model, src, tgt) -> list[str]:
    from stackform.assemble import load, save

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.safetensors"
        save(model, path)
        back = load(path).eval()
    same = torch.allclose(_run(model, src, tgt), _run(back, src, tgt), atol=1e-6)
    return [] if same else ["a saved and loaded model computes different logits"]


def _causal(model, src, tgt) -> list[str]:
    ids = tgt if model.spec.model.kind == "encoder_decoder" else src
    changed = ids.clone()
    changed[:, 5:] = torch.randint(3, VOCAB, changed[:, 5:].shape)
    a = _run(model, src, ids) if model.spec.model.kind == "encoder_decoder" else model(ids)
    b = _run(model, src, changed) if model.spec.model.kind == "encoder_decoder" else model(changed)
    return [] if torch.allclose(a[:, :5], b[:, :5], atol=1e-5) else ["later tokens change earlier logits"]


def _padding(model, src, tgt) -> list[str]:
    mask = torch.ones_like(src, dtype=torch.bool)
    mask[0, 6:] = False
    a, b = src.clone(), src.clone()
    a[~mask], b[~mask] = PAD, 5
    if model.spec.model.kind == "encoder_decoder":
        same = torch.allclose(model(a, tgt, src_mask=mask), model(b, tgt, src_mask=mask), atol=1e-5)
    else:
        same = torch.allclose(model(a, mask)[mask], model(b, mask)[mask], atol=1e-5)
    return [] if same else ["what stands in padded positions changes real outputs"]


def _kv_cache(model, src, tgt) -> list[str]:
    if model.spec.model.kind != "decoder":
        return []
    full = model(src)
    cache = model.new_cache()
    steps = [model(src[:, i:i + 1], cache=cache).logits for i in range(src.shape[1])]
    same = torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    return [] if same else ["one token at a time with the KV cache differs from the full forward"]


def _pairing(model, src, tgt) -> list[str]:
    """Every decoder layer reads the encoder output and says it has cross-attention."""
    if model.spec.model.kind != "encoder_decoder":
        return []
    problems = []
    x = torch.randn(2, tgt.shape[1], model.spec.model.d_model)
    ctx = model.decoder.context(tgt.shape[1], 0, x.device, None)
    memory_ctx = model.encoder.context(src.shape[1], 0, x.device, None)
    m1, m2 = torch.randn(2, src.shape[1], x.shape[-1]), torch.randn(2, src.shape[1], x.shape[-1])
    for i, layer in enumerate(model.decoder.layers):
        if torch.allclose(layer(x, ctx, m1, memory_ctx), layer(x, ctx, m2, memory_ctx)):
            problems.append(f"decoder layer {i} ignores the encoder output (no cross-attention, or paired wrongly)")
        roles = [s.role for s in layer.sublayers()] if callable(getattr(layer, "sublayers", None)) else []
        if "cross_attention" not in roles:
            problems.append(f"decoder layer {i} declares no cross_attention sublayer (sublayers(): {roles})")
    return problems


def _compiles(model, src, tgt) -> list[str]:
    import torch._dynamo

    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(*([src, tgt] if model.spec.model.kind == "encoder_decoder" else [src]))
    breaks = explained.graph_break_count
    return [] if not breaks else [f"torch.compile breaks the graph {breaks} time(s): {explained.break_reasons[:1]}"]


CHECKS = {"shapes and gradients": _shapes_and_gradients, "save/load": _save_load, "padding": _padding,
          "KV cache": _kv_cache, "encoder-decoder pairing": _pairing}


def check_block(kind: str, name: str, params: dict | None = None, *, compile: bool = False,
                model_kinds: tuple[str, ...] = MODEL_KINDS) -> list[str]:
    """What breaks the contract for block ``name`` of ``kind`` (``params``: default its example), one
    line each: ``decoder: KV cache: ...``. An empty list: every check passed."""
    from stackform.assemble import assemble

    if kind not in FIELDS and kind != "mask":
        return [f"{kind} blocks are not checked here (no spec field holds them)"]
    problems = []
    for model_kind in model_kinds:
        if kind == "mask" and model_kind == "encoder_decoder":
            continue
        try:
            model = assemble(tiny_spec(model_kind, kind, name, params), seed=0)
        except registry.StackformError as exc:
            problems.append(f"{model_kind}: the spec is refused: {exc}")
            continue
        src, tgt = _inputs()
        checks = dict(CHECKS)
        if model_kind != "encoder":
            checks["causality"] = _causal
        if compile:
            checks["compile"] = _compiles
        for label, check in checks.items():
            if label != "shapes and gradients":
                model.eval()
            try:
                with torch.no_grad() if label not in ("shapes and gradients", "compile") else torch.enable_grad():
                    found = check(model, src, tgt)
            except Exception as exc:  # a crash is a failed check, reported like one
                found = [f"raised {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"]
            problems += [f"{model_kind}: {label}: {p}" for p in found]
    return problems


def _chosen() -> list[tuple[str, str]]:
    named = os.environ.get("STACKFORM_CHECK", "")
    if named:
        return [tuple(item.split(":", 1)) for item in named.split(",") if ":" in item]  # type: ignore[misc]
    return [(e.kind, e.name) for e in registry.list_blocks() if not e.cls.__module__.startswith("stackform.")]


def test_registered_blocks() -> None:
    """``pytest --pyargs stackform.assemble.testing``: the contract for every plugin block."""
    problems = [f"{kind} {name}: {p}" for kind, name in _chosen() for p in check_block(kind, name)]
    assert not problems, "\n".join(problems)


__all__ = ["CHECKS", "check_block", "tiny_spec"]
