"""The layer is a registered kind: sequential is today's layer (old checkpoints load and compute the
same), parallel is GPT-J / GPT-NeoX's, a spec that says two things about one layer is refused."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from stackform.assemble import assemble, load, save
from stackform.specs import SpecError, load_spec

FIXTURES = Path(__file__).parent / "fixtures"
SEQ2SEQ = {"task": "seq2seq", "data": {"type": "builtin", "name": "numbers"}}


def _spec(kind: str = "decoder", **model) -> dict:
    spec = {"name": "t", "model": {"kind": kind, "vocab_size": 32, "max_len": 16, "d_model": 16, "n_heads": 2,
                                   "n_layers": 2, **model}}
    if kind == "encoder_decoder":
        spec["train"] = dict(SEQ2SEQ)
    return spec


def _run(model, ids):
    return model(ids, ids) if model.spec.model.kind == "encoder_decoder" else model(ids)


@pytest.mark.parametrize("name", ["decoder_pre", "decoder_sandwich", "encdec_post"])
def test_checkpoints_saved_before_layer_kinds_load_and_compute_the_same(name):
    """The fixtures were written by the code before this change (commit 7508dcb), with their logits."""
    model = load(FIXTURES / f"{name}.safetensors").eval()
    expected = load_file(FIXTURES / f"{name}.expected.safetensors")
    with torch.no_grad():
        assert torch.equal(_run(model, expected["ids"]), expected["logits"])


@pytest.mark.parametrize("residual", ["pre", "post", "sandwich"])
def test_residual_key_is_short_for_a_sequential_layer(residual):
    ids = torch.randint(0, 32, (2, 6))
    plain = assemble(_spec(residual=residual), seed=0).eval()
    for layer in ({"type": "sequential", "residual": residual}, "sequential"):
        fields = {"layer": layer} if isinstance(layer, dict) else {"layer": layer, "residual": residual}
        other = assemble(_spec(**fields), seed=0).eval()
        assert list(other.state_dict()) == list(plain.state_dict())
        assert (other.stack.final_norm is None) == (plain.stack.final_norm is None)
        assert torch.equal(_run(other, ids), _run(plain, ids))


def _attention(attn, h: torch.Tensor, causal: bool, memory: torch.Tensor | None = None) -> torch.Tensor:
    """Hand-written multi-head attention with the block's weights: softmax(q k^T / sqrt(hd)) v."""
    b, t, d = h.shape
    n, hd = attn.n_heads, attn.head_dim
    if memory is None:
        q, k, v = F.linear(h, attn.qkv.weight, attn.qkv.bias).split(d, dim=-1)
    else:
        q = F.linear(h, attn.q.weight, attn.q.bias)
        k, v = F.linear(memory, attn.kv.weight, attn.kv.bias).split(d, dim=-1)
    q, k, v = (z.reshape(b, -1, n, hd).transpose(1, 2) for z in (q, k, v))  # [b, h, t, hd]
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if causal:
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
    return F.linear(y, attn.out.weight, attn.out.bias)


def _mlp(ffn, h: torch.Tensor) -> torch.Tensor:
    return F.linear(F.gelu(F.linear(h, ffn.up.weight, ffn.up.bias)), ffn.down.weight, ffn.down.bias)


def _ln(norm, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps)


@pytest.mark.parametrize("shared", [True, False], ids=["gpt-j", "neox"])
def test_parallel_layer_matches_a_hand_written_gpt_j_layer(shared):
    """x + attn(ln(x)) + mlp(ln(x)) (GPT-J), or with a norm per branch (GPT-NeoX), to 1e-6."""
    spec = _spec(positional="none", layer={"type": "parallel", "shared_norm": shared}, n_layers=1,
                 attention={"type": "mha", "bias": True}, ffn={"type": "mlp", "hidden": 24})
    model = assemble(spec, seed=0).eval()
    layer = model.stack.layers[0]
    with torch.no_grad():
        for p in layer.parameters():  # norms start at 1 / 0: make them matter
            p.add_(torch.randn_like(p) * 0.1)
        x = torch.randn(2, 7, 16)
        ctx = model.stack.context(7, 0, x.device, None)
        attn_norm, ffn_norm = (layer.norm, layer.norm) if shared else (layer.attn_norm, layer.ffn_norm)
        expected = x + _attention(layer.self_attn, _ln(attn_norm, x), True) + _mlp(layer.ffn, _ln(ffn_norm, x))
        assert torch.allclose(layer(x, ctx), expected, atol=1e-6, rtol=0)


def test_parallel_cross_attention_is_a_third_branch():
    """In an encoder-decoder's decoder: x + self(n(x)) + cross(n(x), memory) + ffn(n(x))."""
    spec = _spec("encoder_decoder", positional="none", layer="parallel", n_layers=1, ffn={"type": "mlp", "hidden": 24})
    model = assemble(spec, seed=0).eval()
    layer = model.decoder.layers[0]
    with torch.no_grad():
        x, memory = torch.randn(2, 5, 16), torch.randn(2, 4, 16)
        ctx = model.decoder.context(5, 0, x.device, None)
        memory_ctx = model.encoder.context(4, 0, x.device, None)
        h = _ln(layer.norm, x)
        expected = (x + _attention(layer.self_attn, h, True) + _attention(layer.cross_attn, h, False, memory)
                    + _mlp(layer.ffn, h))
        assert torch.allclose(layer(x, ctx, memory, memory_ctx), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["decoder", "encoder", "encoder_decoder"])
def test_parallel_checkpoint_round_trip(kind, tmp_path):
    model = assemble(_spec(kind, layer={"type": "parallel", "shared_norm": False}), seed=0).eval()
    save(model, tmp_path / "m.safetensors")
    back = load(tmp_path / "m.safetensors").eval()
    ids = torch.randint(0, 32, (2, 6))
    with torch.no_grad():
        assert torch.equal(_run(back, ids), _run(model, ids))


@pytest.mark.parametrize("model, where, message", [
    ({"layer": "parallel", "residual": "post"}, "model.residual", "layer 'parallel' (model.layer) has no residual"),
    ({"layer": "parallel", "layers": [{"repeat": 1}, {"repeat": 1, "residual": "sandwich"}]},
     "model.layers.1.residual", "has no residual placement"),
    ({"layer": {"type": "sequential", "residual": "psot"}}, "model.layer.residual",
     "unknown residual 'psot'; did you mean 'post'?"),
    ({"layer": "paralel"}, "model.layer.type", "unknown layer 'paralel'; did you mean 'parallel'?"),
])
def test_layer_spec_errors_are_located(tmp_path, model, where, message):
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_spec(**model), sort_keys=False))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = str(info.value)
    assert len(text.splitlines()) == 1 and f": {where}: " in text and message in text, text


def test_a_group_may_switch_layer_kind():
    spec = load_spec(_spec(layer="parallel", layers=[{"repeat": 1, "layer": {"type": "sequential", "residual": "post"}},
                                                      {"repeat": 1}]))
    model = assemble(spec, seed=0)
    assert [type(layer).block_name for layer in model.stack.layers] == ["sequential", "parallel"]


def test_export_to_hugging_face_refuses_a_parallel_layer():
    """No shipped family maps a parallel layer: the export says so instead of writing a sequential one."""
    from stackform.assemble.interop.convert import find_family
    from stackform.assemble.interop.files import InteropError

    with pytest.raises(InteropError, match=r"layers\.0\.layer"):
        find_family(load_spec("gpt2", ["model.layer=parallel"]).model, "gpt2")
