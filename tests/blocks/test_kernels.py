"""Every attention kernel the dispatcher may pick computes what the dense path computes.

Parametrized from the registry: every registered mask (alone where it hides the future, else with
causal or padding), every positional type, pairs of masks, in all three model kinds, with and
without padding, and with the KV cache in generation. Outputs and the gradients of every parameter
(q, k, v projections and learned biases such as T5's table) must match ``dense`` to TOL. Kernel
blocks and chunks are shrunk to 4 so that tiny sequences cross several of them.
"""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from stackform import registry
from stackform.assemble import assemble
from stackform.blocks import dispatch, far_near, kernels
from variants import VOCAB, base_spec

TOL = dict(rtol=1e-4, atol=1e-5)  # float32; the kernels only reorder sums
KERNELS = ["blocked", "chunked", "folded", "far_near", "flex"]  # flex: forward only on CPU (no backward there)
MASKS = [e for e in registry.list_blocks() if e.kind == "mask"]
POSITIONALS = [e for e in registry.list_blocks() if e.kind == "positional"]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(kernels, "CHUNK", 4)
    monkeypatch.setattr(kernels, "MIN_BLOCK", 4)
    monkeypatch.setattr(far_near, "ALIGN", 1)
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")


def _block(entry) -> dict:
    return {"type": entry.name, **registry.example_params(entry)}


def _masks(entries, kind: str) -> list | None:
    """The mask list of a stack of ``kind`` holding ``entries``, or None when it cannot hold them."""
    blocks = [_block(e) for e in entries]
    if kind == "encoder":
        return None if any(e.cls.hides_future for e in entries) else ["padding", *blocks]
    return blocks if any(e.cls.hides_future for e in entries) else ["causal", *blocks]


def _spec(kind: str, masks: list, positional) -> dict:
    spec = base_spec(kind)
    spec["model"].update(d_model=16, n_heads=2, n_layers=1, positional=_block(positional))
    if kind == "encoder_decoder":
        spec["model"]["decoder"] = {"mask": masks}
    else:
        spec["model"]["mask"] = masks
    return spec


SCORED = [e for e in POSITIONALS if e.cls.biases] + [e for e in POSITIONALS if e.name == "rope"]
CASES = []
for kind in ("decoder", "encoder", "encoder_decoder"):
    side = "encoder" if kind == "encoder" else "decoder"
    sets = [((m,), POSITIONALS) for m in MASKS]  # every mask with every positional type
    if kind == "decoder":
        sets += [(pair, SCORED) for pair in itertools.combinations(MASKS, 2)]  # pairs of masks
    for entries, positionals in sets:
        masks = _masks(entries, side)
        if masks is None:
            continue
        for pos in positionals:
            CASES.append((f"{kind}-{'+'.join(e.name for e in entries)}-{pos.name}", kind, masks, pos))


def _inputs(kind: str, padded: bool):
    g = torch.Generator().manual_seed(0)
    src = torch.randint(3, VOCAB, (2, 11), generator=g)
    mask = torch.ones_like(src, dtype=torch.bool)
    if padded:
        mask[0, 8:] = False  # right padding in row 0
        mask[1, :2] = False  # left padding in row 1
    if kind == "encoder_decoder":
        tgt = torch.randint(3, VOCAB, (2, 10), generator=g)
        return (src, tgt), dict(src_mask=mask, tgt_mask=mask[:, 1:]) if padded else {}, (mask[:, 1:] if padded else None)
    return (src,), dict(attention_mask=mask) if padded else {}, (mask if padded else None)


def _run(model, kernel: str, inputs, kwargs, real):
    model.zero_grad()
    grad = kernel != "flex"
    with dispatch.force(kernel), torch.set_grad_enabled(grad):
        logits = model(*inputs, **kwargs)
        if grad:
            (logits[real] if real is not None else logits).square().mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None} if grad else {}
    return (logits[real] if real is not None else logits).detach(), grads


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_kernel_matches_dense(case):
    _, kind, masks, positional = case
    model = assemble(_spec(kind, masks, positional), seed=0)
    model.train()
    for padded in (False, True):
        inputs, kwargs, real = _inputs(kind, padded)
        want, want_grads = _run(model, "dense", inputs, kwargs, real)
        assert want_grads, "the dense run gave no gradients"
        for kernel in KERNELS:
            got, grads = _run(model, kernel, inputs, kwargs, real)
            where = f"{kernel}{' padded' if padded else ''}"
            torch.testing.assert_close(got, want, **TOL, msg=lambda m: f"{where}: {m}")
            for name, g in grads.items():
                torch.testing.assert_close(g, want_grads[name], **TOL, msg=lambda m: f"{where} grad {name}: {m}")


GENERATION = [c for c in CASES if c[1] != "encoder"]


@pytest.mark.parametrize("case", GENERATION[::3], ids=[c[0] for c in GENERATION[::3]])
def test_kv_cache_steps_match_one_pass(case):
    """Prefill 6 tokens, then one at a time with each kernel: the logits of a single pass."""
    _, kind, masks, positional = case
    model = assemble(_spec(kind, masks, positional), seed=0).eval()
    (inputs, _, _) = _inputs(kind, False)
    ids = inputs[-1]
    with torch.no_grad(), dispatch.force("dense"):
        whole = model(*inputs)
    for kernel in ("chunked", "blocked", "folded", "dense", "flex"):
        cache = model.new_cache()
        steps = [ids[:, :6]] + [ids[:, t:t + 1] for t in range(6, ids.shape[1])]
        outs = []
        with torch.no_grad(), dispatch.force(kernel):
            for part in steps:
                args = (inputs[0], part) if kind == "encoder_decoder" else (part,)
                outs.append(model(*args, cache=cache).logits)
        torch.testing.assert_close(torch.cat(outs, dim=1), whole, **TOL, msg=lambda m: f"{kernel}: {m}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention's backward needs CUDA")
@pytest.mark.parametrize("case", CASES[::4], ids=[c[0] for c in CASES[::4]])
def test_flex_gradients_match_dense_on_cuda(case, monkeypatch):
    """The check that must pass on a GPU before training may use flex (dispatch.FLEX_TRAINING)."""
    monkeypatch.setattr(dispatch, "FLEX_TRAINING", True)
    _, kind, masks, positional = case
    model = assemble(_spec(kind, masks, positional), seed=0, device="cuda").train()
    inputs, kwargs, real = _inputs(kind, True)
    inputs = tuple(x.cuda() for x in inputs)
    kwargs = {k: v.cuda() for k, v in kwargs.items()}
    real = real.cuda() if real is not None else None
    want, want_grads = _run(model, "dense", inputs, kwargs, real)
    model.zero_grad()
    with dispatch.force("flex"):
        logits = model(*inputs, **kwargs)
        (logits[real] if real is not None else logits).square().mean().backward()
    torch.testing.assert_close((logits[real] if real is not None else logits).detach(), want, rtol=1e-3, atol=1e-4)
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, want_grads[name], rtol=1e-3, atol=1e-4, msg=lambda m: f"{name}: {m}")
