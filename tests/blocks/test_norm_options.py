"""Norm options real architectures need: Gemma's 1 + w RMS norm and OLMo's LayerNorm without weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stackform.assemble import assemble
from stackform.specs import SpecError

BASE = {"kind": "decoder", "vocab_size": 23, "max_len": 16, "d_model": 32, "n_heads": 4, "n_layers": 2}


def _model(norm):
    return assemble({"name": "t", "model": {**BASE, "norm": norm}}, seed=0).eval()


def test_unit_offset_rmsnorm_scales_by_one_plus_its_weight():
    model = _model({"type": "rmsnorm", "eps": 1e-5, "unit_offset": True})
    norm = model.stack.final_norm
    assert torch.equal(norm.weight, torch.zeros(32))  # starts as the identity scale
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 32)
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * (1 + norm.weight)
    torch.testing.assert_close(norm(x), expected)


def test_layernorm_without_weights_has_no_parameters():
    model = _model({"type": "layernorm", "weight": False, "bias": False})
    assert not [n for n, _ in model.named_parameters() if "norm" in n]
    x = torch.randn(3, 32)
    assert torch.equal(model.stack.final_norm(x), F.layer_norm(x, (32,), eps=1e-5))


def test_a_bias_without_a_weight_is_refused():
    with pytest.raises(SpecError, match="weight: false needs bias: false"):
        _model({"type": "layernorm", "weight": False})
