"""Block options that Hugging Face families need for an exact export: the attention's ``out_bias``
(Qwen2: q / k / v biases, none on the out projection; GPT-Neo: the other way round) and the learned
positions' ``offset`` (OPT: position p reads row p + 2)."""

from __future__ import annotations

import pytest
import torch

from stackform import registry
from stackform.assemble import assemble
from stackform.specs import SpecError

BASE = {"vocab_size": 23, "max_len": 16, "d_model": 32, "n_heads": 4, "n_layers": 2, "pad_id": 0}
ATTENTION = [e for e in registry.list_blocks() if e.kind == "attention" and "out_bias" in e.params.model_fields]


def _model(kind: str = "decoder", **model):
    train = {"train": {"data": {"type": "builtin", "name": "copy"}}} if kind == "encoder_decoder" else {}
    return assemble({"name": "t", "model": {**BASE, "kind": kind, **model}, **train}, seed=0).eval()


def _attention(entry, **params):
    return {"type": entry.name, **registry.example_params(entry), **params}


@pytest.mark.parametrize("entry", ATTENTION, ids=[e.name for e in ATTENTION])
@pytest.mark.parametrize("bias,out_bias", [(True, False), (False, True), (True, None), (False, None)])
def test_out_bias_sets_the_out_projection_apart(entry, bias, out_bias):
    model = _model("encoder_decoder", attention=_attention(entry, bias=bias, out_bias=out_bias))
    expected = bias if out_bias is None else out_bias
    attentions = [m for m in model.modules() if hasattr(m, "out") and hasattr(m, "cross")]
    assert {m.cross for m in attentions} == {False, True}  # self- and cross-attention both follow it
    for m in attentions:
        assert (m.out.bias is not None) == expected
        for proj in (m.q, m.kv) if m.cross else (m.qkv,):
            assert (proj.bias is not None) == bias


def test_the_out_bias_is_added():
    model = _model(attention={"type": "mha", "bias": False, "out_bias": True})
    ids = torch.randint(1, 23, (2, 7))
    before = model(ids)
    with torch.no_grad():
        model.stack.layers[0].self_attn.out.bias.add_(torch.randn(32))
    assert not torch.allclose(model(ids), before)


def test_a_bad_out_bias_is_one_error_naming_it():
    with pytest.raises(SpecError, match=r"attention\.out_bias") as err:
        _model(attention={"type": "mha", "out_bias": "sometimes"})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["decoder", "encoder", "encoder_decoder"])
@pytest.mark.parametrize("offset", [0, 2, 5])
def test_learned_positions_read_row_p_plus_offset(kind, offset):
    model = _model(kind, positional={"type": "learned", "offset": offset})
    tables = [m for m in model.modules() if type(m).__name__ == "Learned"]
    assert tables
    for table in tables:
        assert table.weight.shape == (BASE["max_len"] + offset, BASE["d_model"])
        x = torch.zeros(1, BASE["max_len"], BASE["d_model"])
        positions = torch.arange(BASE["max_len"])
        assert torch.equal(table.embed(x, positions)[0], table.weight[offset:])
    if kind == "decoder":  # a full-length input reads the last row; the first offset rows are never read
        model.train()
        model(torch.randint(1, 23, (2, BASE["max_len"]))).square().mean().backward()
        grad = model.stack.positional.weight.grad
        assert grad[offset:].abs().sum(-1).gt(0).all() and not grad[:offset].any()


@pytest.mark.parametrize("offset", [-1, 1.5, "two"])
def test_a_bad_offset_is_one_error_naming_it(offset):
    with pytest.raises(SpecError, match=r"positional\.offset") as err:
        _model(positional={"type": "learned", "offset": offset})
    assert "\n" not in str(err.value)
