"""A layer group with its own positional (a score bias in place of the stack's rotation): every kernel the
dispatcher may be forced to equals the dense path, so folded / far_near read key_bias / far_bias from the
layer's own positional, not the stack's."""

from __future__ import annotations

import warnings

import pytest
import torch

from stackform import registry
from stackform.assemble import assemble
from stackform.blocks import dispatch
from variants import VOCAB, base_spec

BIASED = [e.name for e in registry.list_blocks() if e.kind == "positional" and getattr(e.cls, "biases", False)]


def _short_reach(name: str) -> dict:
    """The positional's example, with a bucketed bias's far distance within a 24-token sequence (far_near applies)."""
    entry = registry.get("positional", name)
    params = registry.example_params(entry)
    if "max_distance" in entry.params.model_fields:
        params.update(num_buckets=8, max_distance=8)
    return {"type": name, **params}


def _spec(own: str) -> dict:
    spec = base_spec("decoder")
    layer_pos = _short_reach(own)
    spec["model"].update({"d_model": 32, "n_heads": 4, "n_layers": 3, "max_len": 32, "init_std": 0.5,
                          "positional": {"type": "rope"},
                          "layers": [{"every": 2, "offset": 1, "positional": layer_pos}]})
    return spec


@pytest.mark.parametrize("own", BIASED)
def test_every_kernel_equals_dense_with_a_layers_own_biased_positional(own):
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
    model = assemble(_spec(own), seed=0).eval()
    assert model.stack.layer_positionals, "the rule's positional is built"
    ids = torch.randint(3, VOCAB, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), dispatch.force("dense"):
        want = model(ids)
    for kernel in sorted(dispatch.KERNELS):
        with torch.no_grad(), dispatch.force(kernel):
            torch.testing.assert_close(model(ids), want, rtol=1e-4, atol=1e-4, msg=lambda m: f"{kernel}: {m}")
    plain = _spec(own)
    del plain["model"]["layers"]
    other = assemble(plain, seed=0).eval()
    other.load_state_dict(model.state_dict(), strict=False)  # the same weights, without the layer's positional
    with torch.no_grad():
        assert not torch.allclose(other(ids), want, atol=1e-3)  # the layer's own bias takes part
