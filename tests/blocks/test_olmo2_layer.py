"""OLMo 2's layer from registered blocks: norms on the sublayers' outputs (``residual: reordered``) and
q / k norms over all heads at once (``qk_norm_scope: all``) give Hugging Face Olmo2ForCausalLM's logits."""

from __future__ import annotations

import pytest
import torch

from stackform.assemble import assemble
from stackform.specs import SpecError

SPEC = {"name": "olmo2-tiny", "model": {
    "kind": "decoder", "vocab_size": 23, "max_len": 32, "d_model": 16, "n_heads": 4, "n_layers": 2,
    "positional": {"type": "rope", "theta": 10000.0}, "residual": "reordered", "norm": {"type": "rmsnorm", "eps": 1e-6},
    "attention": {"type": "gqa", "n_kv_heads": 2, "bias": False, "qk_norm": True, "qk_norm_scope": "all"},
    "ffn": {"type": "swiglu", "hidden": 24}, "tie_embeddings": False}}


def test_matches_hugging_face_olmo2():
    transformers = pytest.importorskip("transformers")
    config = transformers.Olmo2Config(vocab_size=23, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
                                      max_position_embeddings=32, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    hf = transformers.Olmo2ForCausalLM(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # norms away from 1
    ours = assemble(SPEC, seed=0).eval()
    theirs = dict(hf.named_parameters())
    with torch.no_grad():
        ours.embed.weight.copy_(theirs["model.embed_tokens.weight"])
        ours.head.weight.copy_(theirs["lm_head.weight"])
        ours.stack.final_norm.weight.copy_(theirs["model.norm.weight"])
        for i, layer in enumerate(ours.stack.layers):
            t = f"model.layers.{i}."
            attn = layer.self_attn
            attn.qkv.weight.copy_(torch.cat([theirs[t + f"self_attn.{n}_proj.weight"] for n in "qkv"]))
            attn.out.weight.copy_(theirs[t + "self_attn.o_proj.weight"])
            attn.q_norm.weight.copy_(theirs[t + "self_attn.q_norm.weight"])
            attn.k_norm.weight.copy_(theirs[t + "self_attn.k_norm.weight"])
            gate_up = [theirs[t + "mlp.gate_proj.weight"], theirs[t + "mlp.up_proj.weight"]]
            layer.ffn.gate_up.weight.copy_(torch.cat(gate_up))
            layer.ffn.down.weight.copy_(theirs[t + "mlp.down_proj.weight"])
            layer.self_res.norm.weight.copy_(theirs[t + "post_attention_layernorm.weight"])
            layer.ffn_res.norm.weight.copy_(theirs[t + "post_feedforward_layernorm.weight"])
    ids = torch.randint(3, 23, (2, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, rtol=1e-4, atol=1e-4)


def test_full_width_norms_differ_from_per_head_ones():
    ids = torch.randint(3, 23, (1, 7))
    full = assemble(SPEC, seed=0).eval()
    per_head = SPEC | {"model": SPEC["model"] | {"attention": SPEC["model"]["attention"] | {"qk_norm_scope": "head"}}}
    head = assemble(per_head, seed=0).eval()
    assert full.stack.layers[0].self_attn.q_norm.weight.shape == (16,)
    assert head.stack.layers[0].self_attn.q_norm.weight.shape == (4,)
    with torch.no_grad():
        assert not torch.allclose(full(ids), head(ids), atol=1e-4)


def test_a_scope_without_qk_norm_is_refused():
    spec = SPEC | {"model": SPEC["model"] | {"attention": {"type": "mha", "qk_norm_scope": "all"}}}
    with pytest.raises(SpecError, match=r"^<dict>: model.attention: qk_norm_scope: all needs qk_norm: true$"):
        assemble(spec)


def test_full_width_norms_in_cross_attention_with_the_kv_cache():
    from stackform.assemble import generate_seq2seq

    model = SPEC["model"] | {"kind": "encoder_decoder", "pad_id": 0, "bos_id": 1, "eos_id": 2, "init_std": 0.5}
    net = assemble({"name": "olmo2-s2s", "model": model, "train": {"data": {"type": "builtin", "name": "copy"}}},
                   seed=0)
    assert net.decoder.layers[0].cross_attn.k_norm.weight.shape == (8,)  # 2 kv heads x 4
    src = torch.randint(3, 23, (2, 5), generator=torch.Generator().manual_seed(0))
    src[1, 3:] = 0
    cached = generate_seq2seq(net, src, 8, eos_id=-1)
    assert torch.equal(cached, generate_seq2seq(net, src, 8, eos_id=-1, use_cache=False))
