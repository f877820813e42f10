"""torch.compile sees every zoo model as one graph: zero graph breaks (tiny sizes)."""

from __future__ import annotations

import json

import pytest
import torch

from stackform.assemble import assemble
from stackform.specs import load_spec, zoo_names

TINY = ["model.n_layers=1", "model.d_model=32", "model.n_heads=2"]


def _tiny(name: str):
    spec = load_spec(name)
    overrides = list(TINY)
    attention = spec.model.attention.params
    if getattr(attention, "n_kv_heads", None):
        overrides.append("model.attention.n_kv_heads=1")
    if spec.model.layers:  # per-layer groups (GPT-Neo's global / local): the first two, one layer each
        groups = [g.model_dump(mode="json", exclude_none=True) | {"repeat": 1} for g in spec.model.layers[:2]]
        overrides = [o for o in overrides if not o.startswith("model.n_layers=")]
        overrides += [f"model.n_layers={len(groups)}", f"model.layers={json.dumps(groups)}"]
    if spec.model.encoder or spec.model.decoder:
        overrides += [f"model.{side}.n_layers=1" for side in ("encoder", "decoder")
                      if getattr(spec.model, side) is not None and getattr(spec.model, side).n_layers]
    return assemble(name, overrides=overrides, seed=0)


@pytest.mark.parametrize("name", zoo_names())
def test_zoo_models_compile_without_graph_breaks(name):
    model = _tiny(name)
    model.check_inputs = False
    ids = torch.randint(0, 200, (2, 8))
    args = (ids, ids[:, :5]) if model.spec.model.kind == "encoder_decoder" else (ids,)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(*args)
    assert explained.graph_break_count == 0, [str(r.reason) for r in explained.break_reasons]
    assert explained.graph_count == 1
