"""The declared forms of a positional's score bias, and the kernels built on them, agree with score_mod.

- ``key_bias``: under masks that hide the future, score_mod - key_bias is constant along each query row;
- ``far_bias``: beyond its distance, score_mod adds exactly the declared constant per head;
- ``folded`` (key bias in q and k, with per-head cutoffs) and ``far_near`` (T5's far keys on the
  causal flash kernel, the band near the diagonal biased) give dense's outputs and gradients (q, k,
  v and the learned table) at lengths where the cutoffs and the far part are really used.
"""

from __future__ import annotations

import pytest
import torch

from stackform import registry
from stackform.blocks import dispatch, far_near
from stackform.blocks.context import AttentionContext
from stackform.blocks.masks import Causal
from stackform.blocks.positional import ALiBi, Positional
from stackform.blocks.relative import RelativeBias
from stackform.registry import BlockParams, Dims

BIASING = [e for e in registry.list_blocks() if e.kind == "positional" and e.cls.biases]


def _dims(t: int, heads: int = 2, head_dim: int = 8) -> Dims:
    return Dims(d_model=heads * head_dim, n_heads=heads, head_dim=head_dim, max_len=t, n_layers=1,
                vocab_size=23, dropout=0.0, causal=True)


def _build(entry, t: int) -> Positional:
    params = entry.params(**registry.example_params(entry)) if entry.params is not BlockParams else BlockParams()
    block = entry.cls(_dims(t), params)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=1.0)
    return block


def _bias(block: Positional, t: int) -> torch.Tensor:
    pos = torch.arange(t)
    mod = block.score_mod(block.prepare(pos, pos))
    h = torch.arange(2)[:, None, None]
    return mod(torch.zeros(()), torch.zeros((), dtype=torch.long), h, pos[:, None], pos[None, :])  # [h, t, t]


@pytest.mark.parametrize("entry", BIASING, ids=[e.name for e in BIASING])
def test_declared_key_bias_is_the_score_mod_up_to_a_row_constant(entry):
    t = 300
    block = _build(entry, t)
    pos = torch.arange(t)
    key_bias = block.key_bias(block.prepare(pos, pos))
    if key_bias is None:
        pytest.skip(f"{entry.name} declares no key_bias")  # nothing declared, nothing to check
    rest = (_bias(block, t) - key_bias[:, None, :]).masked_fill(pos[None, :] > pos[:, None], float("nan"))
    row = rest.nanmean(-1, keepdim=True)
    torch.testing.assert_close(torch.where(rest.isnan(), row, rest), row.expand_as(rest), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("entry", BIASING, ids=[e.name for e in BIASING])
def test_declared_far_bias_is_the_score_mod_beyond_its_distance(entry):
    t = 300
    block = _build(entry, t)
    pos = torch.arange(t)
    far = block.far_bias(block.prepare(pos, pos))
    if far is None:
        pytest.skip(f"{entry.name} declares no far_bias")
    distance, value = far
    assert distance < t, "the example's far distance should fall inside the test's length"
    bias = _bias(block, t)
    far_keys = (pos[:, None] - pos[None, :]) >= distance
    torch.testing.assert_close(bias[:, far_keys], value[:, None].expand(-1, int(far_keys.sum())).detach())
    assert not torch.equal(bias[:, distance - 1, 0], value.detach()) or distance == 0  # the least such distance


def _attend(block, t, kernel, dtype, heads=2, kv_heads=None, head_dim=8):
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, heads, t, head_dim, generator=g, dtype=dtype, requires_grad=True)
    k, v = (torch.randn(2, kv_heads or heads, t, head_dim, generator=g, dtype=dtype, requires_grad=True)
            for _ in range(2))
    pos = torch.arange(t)
    ctx = AttentionContext(block, [Causal(_dims(t, heads, head_dim), BlockParams())], pos, pos, n_heads=heads)
    picked = []
    real = dispatch.choose
    dispatch.choose = lambda *a, **kw: picked.append(real(*a, **kw)) or picked[-1]
    try:
        with dispatch.force(kernel):
            out, _ = ctx.attend(q, k, v)
    finally:
        dispatch.choose = real
    params = [q, k, v] + list(block.parameters())
    grads = torch.autograd.grad(out, params, torch.randn(out.shape, generator=g, dtype=dtype))
    return out, grads, picked


@pytest.mark.parametrize("t", [40, 67])
@pytest.mark.parametrize("kv_heads", [2, 1])
def test_far_near_matches_dense_with_the_table_gradient(t, kv_heads, monkeypatch):
    monkeypatch.setattr(far_near, "ALIGN", 4)
    block = RelativeBias(_dims(t), RelativeBias.Params(num_buckets=8, max_distance=10)).double()
    torch.nn.init.normal_(block.weight, std=1.0)
    want, want_grads, _ = _attend(block, t, "dense", torch.float64, kv_heads=kv_heads)
    got, grads, picked = _attend(block, t, "far_near", torch.float64, kv_heads=kv_heads)
    assert picked == ["far_near"]
    torch.testing.assert_close(got, want)
    for g, w in zip(grads, want_grads):  # q, k, v, the table (rounded through float32 scores in both)
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_folded_alibi_with_cutoffs_matches_dense():
    """Eight heads at T = 600: the steep heads attend within their cutoff (band), the others fold."""
    t = 600
    block = ALiBi(_dims(t, heads=8), BlockParams())
    want, want_grads, _ = _attend(block, t, "dense", torch.float32, heads=8)
    got, grads, picked = _attend(block, t, "folded", torch.float32, heads=8)
    assert picked[0] == "folded" and "sdpa" in picked  # the shallow heads: folded into SDPA is_causal
    torch.testing.assert_close(got, want, rtol=1e-4, atol=2e-5)
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=2e-5)
