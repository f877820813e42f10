"""stackform.assemble.testing: the contract suite passes a good block and names what a bad one breaks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stackform import registry
from stackform.assemble.testing import check_block
from stackform.blocks import Sublayer
from stackform.registry import BlockParams


class MisPaired(nn.Module):
    """The issue's plugin: in an encoder-decoder it paired the FFN with cross-attention (memory unused)."""

    container, parallel = True, True

    def __init__(self, dims, params: BlockParams, parts):
        super().__init__()
        self.norm, self.self_attn, self.ffn = parts.norm(), parts.attention(), parts.ffn()

    def sublayers(self):
        return [Sublayer("self_attention", self.self_attn, ("before",), self.norm),
                Sublayer("ffn", self.ffn, ("before",), self.norm)]

    def forward(self, x, ctx, memory=None, memory_ctx=None, cache=None, weights=None):
        h = self.norm(x)
        y, _ = self.self_attn(h, ctx, cache=cache[0] if cache else None)
        return x + y + self.ffn(h)


class Peeking(nn.Module):
    """Attention that ignores the masks: every query sees every key (the future too)."""

    Params = BlockParams

    def __init__(self, dims, params: BlockParams, cross: bool = False):
        super().__init__()
        self.cross = cross
        self.v = nn.Linear(dims.d_model, dims.d_model)

    def forward(self, x, ctx, memory=None, cache=None, need_weights=False):
        src = memory if self.cross else x
        if cache is not None and not self.cross:
            cache.append(src[:, None], src[:, None])
            src = cache.k[:, 0]
        return self.v(src.mean(dim=1, keepdim=True)).expand_as(x), None


@pytest.fixture
def bad_blocks():
    registry.register("layer", "mispaired")(MisPaired)
    registry.register("attention", "peeking")(Peeking)
    yield
    registry.unregister("layer", "mispaired")
    registry.unregister("attention", "peeking")


def test_a_good_block_passes():
    assert check_block("layer", "parallel") == []


def test_the_mis_paired_layer_is_caught(bad_blocks):
    problems = check_block("layer", "mispaired", model_kinds=("encoder_decoder",))
    assert any("encoder-decoder pairing: decoder layer 0 ignores the encoder output" in p for p in problems), problems
    assert any("declares no cross_attention sublayer" in p for p in problems), problems


def test_attention_that_peeks_is_caught(bad_blocks):
    problems = check_block("attention", "peeking", model_kinds=("decoder", "encoder"))
    assert any(p.startswith("decoder: causality: later tokens change earlier logits") for p in problems), problems
    assert any(p.startswith("decoder: KV cache:") for p in problems), problems
    assert any(p.startswith("encoder: padding:") for p in problems), problems


def test_compile_check_runs():
    assert check_block("ffn", "mlp", compile=True, model_kinds=("decoder",)) == []


class Breaking(nn.Module):
    """An FFN whose forward breaks torch.compile's graph."""

    Params = BlockParams

    def __init__(self, dims, params: BlockParams):
        super().__init__()
        self.up = nn.Linear(dims.d_model, dims.d_model)

    def forward(self, x):
        torch._dynamo.graph_break()
        return self.up(x)


def test_a_graph_break_is_caught():
    registry.register("ffn", "breaking")(Breaking)
    try:
        problems = check_block("ffn", "breaking", compile=True, model_kinds=("decoder",))
    finally:
        registry.unregister("ffn", "breaking")
    assert [p for p in problems if p.startswith("decoder: compile: torch.compile breaks the graph")], problems
