"""The dispatcher's choices, and a plugin mask that only defines ``allowed`` getting the fast kernels."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from stackform import registry
from stackform.assemble import assemble
from stackform.blocks import Mask, dispatch, kernels
from stackform.blocks.context import AttentionContext
from stackform.blocks.masks import Causal, SlidingWindow
from stackform.blocks.positional import ALiBi
from stackform.blocks.relative import RelativeBias
from stackform.registry import BlockParams, Dims

DIMS = Dims(d_model=16, n_heads=2, head_dim=8, max_len=4096, n_layers=1, vocab_size=23, dropout=0.0, causal=True)


class Dilated(Mask):
    """A plugin's mask in four lines: every other key (with causal: every other earlier key)."""

    def allowed(self, b, h, q_idx, kv_idx, info):
        return (q_idx - kv_idx) % 2 == 0


class Sinks(Mask):
    """StreamingLLM's attention sinks: the first 4 tokens and the last 8."""

    def allowed(self, b, h, q_idx, kv_idx, info):
        return (kv_idx < 4) | ((q_idx - kv_idx).abs() < 8)


def _plan(masks, t, positional=None, window=None, key_padding=None):
    pos = torch.arange(t)
    return AttentionContext(positional, masks, pos, pos, key_padding, n_heads=2).plan(window, 2)


CPU, CUDA = torch.device("cpu"), torch.device("cuda")
CAUSAL = Causal(DIMS, BlockParams())


@pytest.mark.parametrize("masks, positional, window, t, device, want", [
    ([CAUSAL], None, None, 4096, CPU, "sdpa"),  # the default path is untouched
    ([CAUSAL], None, None, 4096, CUDA, "sdpa"),
    ([], None, None, 4096, CPU, "sdpa"),
    ([CAUSAL], ALiBi(DIMS, BlockParams()), None, 4096, CPU, "folded"),  # into q and k, then sdpa is_causal
    ([CAUSAL], RelativeBias(DIMS, RelativeBias.Params()), None, 4096, CPU, "far_near"),
    ([CAUSAL], RelativeBias(DIMS, RelativeBias.Params()), 256, 4096, CPU, "blocked"),  # a window: not far_near
    ([CAUSAL], RelativeBias(DIMS, RelativeBias.Params()), None, 200, CPU, "dense"),  # no room for the band
    ([CAUSAL], ALiBi(DIMS, BlockParams()), None, 4096, CUDA, "flex"),
    ([CAUSAL], ALiBi(DIMS, BlockParams()), None, 64, CUDA, "folded"),  # short: below flex's crossover
    ([CAUSAL, SlidingWindow(DIMS, SlidingWindow.Params(window=256))], None, None, 4096, CPU, "blocked"),
    ([CAUSAL], None, 256, 4096, CPU, "blocked"),  # an attention layer's own window
    ([CAUSAL, SlidingWindow(DIMS, SlidingWindow.Params(window=256))], None, None, 600, CPU, "chunked"),
    ([CAUSAL, Dilated()], None, None, 4096, CPU, "chunked"),
    ([CAUSAL, Dilated()], None, None, 4096, CUDA, "flex"),
    ([Sinks()], None, None, 4096, CPU, "dense"),  # nothing bounds its keys: no kernel can skip any
])
def test_the_dispatcher_picks(masks, positional, window, t, device, want):
    plan = _plan(masks, t, positional, window)
    if want == "flex":  # flex trains only once its CUDA gradients are checked (dispatch.FLEX_TRAINING)
        assert dispatch.choose(plan, device, grad=False, dropout=0.0, need_weights=False) == "flex"
        assert dispatch.choose(plan, device, grad=True, dropout=0.0, need_weights=False) != "flex"
    else:
        assert dispatch.choose(plan, device, grad=True, dropout=0.0, need_weights=False) == want
    assert dispatch.choose(plan, device, grad=True, dropout=0.0, need_weights=True) == "explicit"


def test_a_key_bias_folds_only_where_exact():
    """ALiBi folds into q and k under masks that hide the future, in dtypes precise enough at that length."""
    alibi = ALiBi(DIMS, BlockParams())
    assert dispatch.choose(_plan([CAUSAL], 4096, alibi), CPU, True, 0.0, False, torch.float32) == "folded"
    assert dispatch.choose(_plan([CAUSAL], 4096, alibi), CPU, True, 0.0, False, torch.bfloat16) != "folded"
    assert dispatch.choose(_plan([CAUSAL], 4096, alibi), CPU, True, 0.1, False, torch.float32) == "folded"
    long = dataclasses.replace(DIMS, max_len=1 << 20)
    assert dispatch.choose(_plan([CAUSAL], 1 << 20, ALiBi(long, BlockParams())), CPU, True, 0.0, False,
                           torch.float32) != "folded"  # slope x T too large for float32's rounding
    assert dispatch.choose(_plan([Sinks()], 4096, alibi), CPU, True, 0.0, False) != "folded"  # keys ahead


def test_flex_is_never_picked_where_it_cannot_run():
    plan = _plan([CAUSAL], 4096, ALiBi(DIMS, BlockParams()))
    assert dispatch.choose(plan, CUDA, grad=True, dropout=0.1, need_weights=False) != "flex"  # no dropout in flex
    with dispatch.force("flex"):
        assert dispatch.choose(plan, CPU, grad=True, dropout=0.0, need_weights=False) != "flex"  # no CPU backward
        assert dispatch.choose(plan, CPU, grad=False, dropout=0.0, need_weights=False) == "flex"


@pytest.mark.parametrize("mask", [Dilated(), Sinks()], ids=["dilated", "sinks"])
@pytest.mark.parametrize("kernel", ["chunked", "blocked", "flex", "dense"])
def test_a_plugin_mask_that_only_defines_allowed_runs_on_every_kernel(mask, kernel, monkeypatch):
    monkeypatch.setattr(kernels, "CHUNK", 8)
    monkeypatch.setattr(kernels, "MIN_BLOCK", 8)
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 37, 8, generator=g, requires_grad=True) for _ in range(3))
    padding = torch.ones(2, 37, dtype=torch.bool)
    padding[1, 30:] = False
    plan = _plan([CAUSAL, mask], 37, ALiBi(DIMS, BlockParams()), window=12, key_padding=padding)
    dense = plan_grid = plan.dense(0, 37, 0, 37, float_mask=True)  # the mask from allowed, evaluated once
    scores = (q @ k.transpose(-1, -2)) / 8 ** 0.5 + plan_grid
    want = scores.softmax(-1).nan_to_num(0.0) @ v
    with dispatch.force(kernel), torch.set_grad_enabled(kernel != "flex"):
        got, _ = dispatch.attend(q, k, v, plan, None, 0.0)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert torch.isinf(dense).any()  # the plugin's mask did hide keys


def test_a_registered_plugin_mask_gets_the_fast_kernel_in_a_model(monkeypatch):
    """Registered by a plugin and named in a spec: chunked runs it at length, and agrees with dense."""
    registry.register("mask", "test_dilated")(type("TestDilated", (Dilated,), {
        "__init__": lambda self, dims, params: Mask.__init__(self)}))
    try:
        monkeypatch.setattr(kernels, "CHUNK", 4)
        spec = {"name": "d", "model": {"kind": "decoder", "vocab_size": 23, "max_len": 16, "d_model": 16,
                                       "n_heads": 2, "n_layers": 1, "positional": "alibi",
                                       "mask": ["causal", "test_dilated"]}}
        model = assemble(spec, seed=0)
        ids = torch.randint(0, 23, (2, 13))
        picked = []
        real = dispatch.choose
        monkeypatch.setattr(dispatch, "choose", lambda *a, **kw: picked.append(real(*a, **kw)) or picked[-1])
        fast = model(ids)
        with dispatch.force("dense"):
            slow = model(ids)
        assert picked[:2] == ["folded", "chunked"]  # ALiBi goes into q and k, the plugin's mask to chunked
        torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)
    finally:
        registry.unregister("mask", "test_dilated")


def test_the_documented_mask_runs_fast_and_right(monkeypatch):
    """docs/extending.md's attention-sinks mask, as written: a spec uses it, and every kernel agrees."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "extending.md").read_text()
    code = next(c.split("```", 1)[0] for c in text.split("```python\n")[1:] if '"mask", "sinks"' in c)
    try:
        exec(compile(code, "docs/extending.md", "exec"), {"__name__": "docs_example"})  # our own doc's code
        monkeypatch.setattr(kernels, "CHUNK", 4)
        spec = {"name": "s", "model": {"kind": "decoder", "vocab_size": 23, "max_len": 16, "d_model": 16,
                                       "n_heads": 2, "n_layers": 1, "positional": "relative_bias",
                                       "mask": ["causal", {"type": "sinks", "sinks": 2, "recent": 3}]}}
        model = assemble(spec, seed=0)
        ids = torch.randint(0, 23, (2, 13))
        with dispatch.force("dense"):
            want = model(ids)
        for kernel in ("chunked", "blocked"):
            with dispatch.force(kernel):
                torch.testing.assert_close(model(ids), want, rtol=1e-4, atol=1e-5)
        assert dispatch.choose(model.stack.context(13, 0, ids.device, None).plan(None, 2), CPU, True, 0.0,
                               False) == "chunked"
    finally:
        registry.unregister("mask", "sinks")


def test_bias_still_serves_blocks_that_call_sdpa_themselves():
    """ctx.bias(window): the causal fast path, or the dense [b|1, h|1, q, k] mask / bias the kernels agree with."""
    pos = torch.arange(10)
    assert AttentionContext(None, [CAUSAL], pos, pos).bias() == (None, True)
    ctx = AttentionContext(ALiBi(DIMS, BlockParams()), [CAUSAL], pos, pos, n_heads=2)
    bias, is_causal = ctx.bias(window=3)
    assert not is_causal and bias.shape == (1, 2, 10, 10)
    distance = (pos[:, None] - pos[None, :]).float()
    want = (-ALiBi(DIMS, BlockParams()).slopes[:, None, None] * distance.abs()).masked_fill(
        (distance < 0) | (distance >= 3), float("-inf"))
    torch.testing.assert_close(bias[0], want)
