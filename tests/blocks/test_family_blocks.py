"""The blocks real architectures need: T5's relative bias, heads, token types, embedding norm,
attention scale, rope scaling, the [sin | cos] sinusoid layout, the gate's activation.
"""

from __future__ import annotations

import math

import pytest
import torch

from stackform.assemble import ModelInputError, assemble, load, save
from stackform.blocks.positional import RopeScaling, sinusoid_table
from stackform.blocks.relative import relative_bucket

BASE = {"vocab_size": 23, "max_len": 16, "d_model": 32, "n_heads": 4, "n_layers": 2, "pad_id": 0}


def _model(**model):
    kind = model.setdefault("kind", "decoder")
    train = {"train": {"data": {"type": "builtin", "name": "copy"}}} if kind == "encoder_decoder" else {}
    return assemble({"name": "t", "model": {**BASE, **model}, **train}, seed=0).eval()


def test_relative_buckets_follow_t5():
    distance = torch.tensor([-200, -64, -9, -8, -1, 0, 1, 7, 8, 9, 64, 200])  # key - query
    both = relative_bucket(distance, True, 32, 128).tolist()
    assert both == [15, 14, 8, 8, 1, 0, 17, 23, 24, 24, 30, 31]
    back = relative_bucket(distance, False, 32, 128).tolist()
    assert back == [31, 26, 9, 8, 1, 0, 0, 0, 0, 0, 0, 0]  # causal: the future shares bucket 0


def test_relative_buckets_equal_transformers():
    transformers = pytest.importorskip("transformers")
    rule = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket
    distance = torch.arange(-300, 300)
    for bidirectional in (True, False):
        for buckets, max_distance in ((32, 128), (8, 12), (10, 40)):
            theirs = rule(distance, bidirectional=bidirectional, num_buckets=buckets, max_distance=max_distance)
            assert torch.equal(relative_bucket(distance, bidirectional, buckets, max_distance), theirs)


def test_relative_bias_is_shared_by_the_layers_and_learned():
    model = _model(positional={"type": "relative_bias", "num_buckets": 8, "max_distance": 12})
    names = [n for n, _ in model.named_parameters() if "positional" in n]
    assert names == ["stack.positional.weight"]  # one [buckets, heads] table for the whole stack
    model(torch.randint(1, 23, (2, 10))).square().mean().backward()
    assert model.stack.positional.weight.grad.abs().sum() > 0


def test_bert_pieces_get_gradients_and_survive_save_load(tmp_path):
    model = _model(kind="encoder", token_type={"type": "learned", "n_types": 3}, mask=["padding"],
                   embedding_norm={"type": "layernorm", "eps": 1e-12}, head={"type": "mlm"})
    model.train()
    ids, types = torch.randint(1, 23, (2, 8)), torch.randint(0, 3, (2, 8))
    model(ids, token_type_ids=types).square().mean().backward()
    for name in ("embed.token_types.weight", "embed.norm.weight", "head.transform.weight", "head.norm.bias",
                 "head.bias", "embed.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    model.eval()
    save(model, tmp_path / "m.safetensors")
    again = load(tmp_path / "m.safetensors").eval()
    assert torch.equal(again(ids, token_type_ids=types), model(ids, token_type_ids=types))
    assert not torch.equal(model(ids, token_type_ids=types), model(ids))  # the types matter; default is type 0
    assert torch.equal(model(ids, token_type_ids=torch.zeros_like(ids)), model(ids))


def test_token_type_ids_are_checked():
    model = _model(kind="encoder", token_type="learned")
    ids = torch.randint(1, 23, (2, 8))
    with pytest.raises(ModelInputError, match=r"token_type_ids: type 2 is outside \[0, 2\)"):
        model(ids, token_type_ids=torch.full_like(ids, 2))
    with pytest.raises(ModelInputError, match="does not match input_ids"):
        model(ids, token_type_ids=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ModelInputError, match="this model has no token types"):
        _model(kind="encoder")(ids, token_type_ids=torch.zeros_like(ids))


def test_linear_head_bias_and_rescale():
    plain = _model()
    h = torch.randn(2, 3, 32)
    rescaled = _model(head={"type": "linear", "rescale": True, "bias": True})
    assert rescaled.head.bias is not None and rescaled.head.weight is rescaled.embed.weight
    with torch.no_grad():
        rescaled.head.bias.fill_(0.5)
        expected = torch.nn.functional.linear(h * 32 ** -0.5, rescaled.head.weight) + 0.5
        torch.testing.assert_close(rescaled.head(h), expected)
    assert set(plain.state_dict()) == {n for n in rescaled.state_dict() if n != "head.bias"}


def test_attention_scale():
    ids = torch.randint(1, 23, (2, 9))
    default, same = _model(), _model(attention={"type": "mha", "scale": 1 / math.sqrt(8)})
    torch.testing.assert_close(default(ids), same(ids), rtol=0, atol=1e-5)  # 1/sqrt(8) is the default
    unscaled = _model(attention={"type": "mha", "scale": 1.0})
    assert not torch.allclose(default(ids), unscaled(ids))
    explicit = unscaled(ids, return_attention=True).logits  # the explicit path uses the same scale
    torch.testing.assert_close(explicit, unscaled(ids), rtol=0, atol=1e-5)


def test_rope_linear_scaling_stretches_positions():
    plain = _model(positional="rope").stack.positional
    linear = _model(positional={"type": "rope", "scaling": {"type": "linear", "factor": 2.0}}).stack.positional
    torch.testing.assert_close(linear.cos[0::2], plain.cos[:8])  # position 2p scaled = position p


def test_rope_llama3_scaling_keeps_high_and_divides_low_frequencies():
    inv_freq = 1.0 / 500000.0 ** (torch.arange(0, 64, 2).float() / 64)
    scaling = RopeScaling(type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_len=64)
    scaled = scaling.apply(inv_freq)
    wavelength = 2 * math.pi / inv_freq
    short, long = wavelength < 64 / 4, wavelength > 64
    assert torch.equal(scaled[short], inv_freq[short])
    torch.testing.assert_close(scaled[long], inv_freq[long] / 8)
    middle = ~short & ~long
    assert ((scaled[middle] < inv_freq[middle]) & (scaled[middle] > inv_freq[middle] / 8)).all()
    with pytest.raises(ValueError, match="high_freq_factor"):
        RopeScaling(type="llama3", factor=8.0, low_freq_factor=4.0, high_freq_factor=1.0)


def test_sinusoid_halves_layout():
    interleaved, halves = sinusoid_table(10, 8), sinusoid_table(10, 8, layout="halves")
    assert torch.equal(halves[:, :4], interleaved[:, 0::2]) and torch.equal(halves[:, 4:], interleaved[:, 1::2])
    odd = sinusoid_table(10, 7, layout="halves")  # Marian puts the extra sin first
    assert torch.equal(odd[:, :4], sinusoid_table(10, 7)[:, 0::2])


def test_gated_ffn_activation_param():
    ids = torch.randint(1, 23, (2, 9))
    geglu, tanh = _model(ffn="geglu"), _model(ffn={"type": "geglu", "activation": "gelu_tanh"})
    swiglu_as_geglu = _model(ffn={"type": "swiglu", "activation": "gelu"})
    assert torch.equal(geglu(ids), swiglu_as_geglu(ids))
    assert not torch.equal(geglu(ids), tanh(ids))


def test_side_embedding_norms_with_one_shared_table(tmp_path):
    """BART: encoder and decoder read one token table, each side with its own embedding norm (a side's
    ``embedding_norm``); the model-level one stays a single module for a shared embedding."""
    sides = {"encoder": {"embedding_norm": "layernorm"}, "decoder": {"embedding_norm": "layernorm"}}
    model = _model(kind="encoder_decoder", share_embeddings=True, **sides)
    assert model.src_embed.weight is model.tgt_embed.weight is model.head.weight
    assert model.src_embed.norm is not model.tgt_embed.norm
    with torch.no_grad():
        model.tgt_embed.norm.weight.mul_(3.0)
    save(model, tmp_path / "m.safetensors")
    again = load(tmp_path / "m.safetensors").eval()
    assert again.src_embed.weight is again.tgt_embed.weight
    assert torch.equal(again.tgt_embed.norm.weight, model.tgt_embed.norm.weight)
    one = _model(kind="encoder_decoder", share_embeddings=True, embedding_norm="layernorm")
    assert one.src_embed is one.tgt_embed
    assert model.num_parameters() == one.num_parameters() + 2 * BASE["d_model"]
    src, tgt = torch.randint(1, 23, (2, 5)), torch.randint(1, 23, (2, 4))
    with torch.no_grad():
        assert torch.equal(again(src, tgt), model(src, tgt))
