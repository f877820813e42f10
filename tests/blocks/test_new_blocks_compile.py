"""The blocks of issue 15's point 3 compile as one graph, with no graph break (tiny sizes)."""

from __future__ import annotations

import copy

import pytest
import torch

from stackform.assemble import assemble

BASE = {"name": "t", "model": {"kind": "decoder", "vocab_size": 23, "max_len": 16, "d_model": 16, "n_heads": 2,
                               "n_layers": 2}}
CASES = {
    "moe": {"ffn": {"type": "moe", "n_experts": 4, "top_k": 2, "shared": "swiglu", "shared_gate": True}},
    "softcap": {"attention": {"type": "mha", "softcap": 30.0}, "head": {"type": "linear", "softcap": 30.0}},
    "partial-rope": {"positional": {"type": "rope", "fraction": 0.5, "layout": "interleaved"}},
    "layer-rules": {"positional": "rope", "attention": {"type": "mha", "window": 4},
                    "layers": [{"every": 2, "offset": 1, "attention": "mha",
                                "positional": {"type": "rope", "theta": 1.0e6}}]},
    "olmo2": {"residual": "reordered", "attention": {"type": "mha", "qk_norm": True, "qk_norm_scope": "all"}},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiles_without_graph_breaks(name):
    spec = copy.deepcopy(BASE)
    spec["model"].update(CASES[name])
    model = assemble(spec, seed=0)
    model.check_inputs = False
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(torch.randint(0, 23, (2, 8)))
    assert explained.graph_break_count == 0, [str(r.reason) for r in explained.break_reasons]
    assert explained.graph_count == 1
