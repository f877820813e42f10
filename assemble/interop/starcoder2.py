"""Starcoder2 (``Starcoder2ForCausalLM``): rotary, pre-norm LayerNorm, grouped-query attention and a
GELU MLP (``c_fc`` / ``c_proj``), biases on every projection (``use_bias``), an optional sliding window.
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import HF_ACTIVATIONS, Config, Family, ffn_hidden, kv_heads
from .llama import rope_block, rope_config
from .rules import Rule, linear, norm, same, self_attention


class Starcoder2(Family):
    """Hugging Face Starcoder2."""

    name = "starcoder2"
    model_types = ("starcoder2",)
    prefix = "model."
    kind = "decoder"
    blocks = {"positional": ("rope",), "norm": ("layernorm",), "ffn": ("mlp",)}
    ignore = (r"\.rotary_emb\.inv_freq$",)

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        d_model, n_heads, vocab = config.need("hidden_size"), config.need("num_attention_heads"), config.need("vocab_size")
        n_kv, bias = config.get("num_key_value_heads", n_heads), config.get("use_bias", True)
        attention: dict[str, Any] = {"type": "gqa", "n_kv_heads": n_kv} if n_kv != n_heads else {"type": "mha"}
        attention |= {"bias": bias, "dropout": config.get("attention_dropout", 0.0)}
        if config.get("sliding_window"):
            attention["window"] = config.get("sliding_window")
        return {
            "kind": "decoder", "vocab_size": vocab, "max_len": config.get("max_position_embeddings", 4096),
            "d_model": d_model, "n_heads": n_heads, "n_layers": config.need("num_hidden_layers"),
            "dropout": config.get("residual_dropout", 0.0), "positional": rope_block(config), "residual": "pre",
            "norm": {"type": "layernorm", "eps": config.get("norm_epsilon", 1e-5)},
            "attention": attention,
            "ffn": {"type": "mlp", "activation": config.activation("hidden_act", "gelu_pytorch_tanh"),
                    "hidden": config.need("intermediate_size"), "bias": bias},
            "tie_embeddings": config.get("tie_word_embeddings", True),
            **config.token_ids(vocab, bos_id="bos_token_id", eos_id="eos_token_id", pad_id="pad_token_id"),
        }

    def config(self, model: ModelSpec) -> dict[str, Any]:
        attention, ffn = model.attention.params, model.ffn.params
        if attention.bias != ffn.bias or not model.norm.params.bias:
            raise ValueError("Starcoder2 has one use_bias for attention and MLP, and LayerNorms with biases")
        return {
            "model_type": "starcoder2", "architectures": ["Starcoder2ForCausalLM"],
            "vocab_size": model.vocab_size, "max_position_embeddings": model.max_len, "hidden_size": model.d_model,
            "num_attention_heads": model.n_heads, "num_key_value_heads": kv_heads(model),
            "num_hidden_layers": model.n_layers_of("decoder"), "intermediate_size": ffn_hidden(model, model.ffn),
            "hidden_act": HF_ACTIVATIONS[ffn.activation], "norm_epsilon": model.norm.params.eps,
            "use_bias": attention.bias, "sliding_window": attention.window, "attention_dropout": attention.dropout,
            "residual_dropout": model.dropout, "embedding_dropout": model.dropout,
            "tie_word_embeddings": model.tie_embeddings,
            "bos_token_id": model.bos_id, "eos_token_id": model.eos_id, "pad_token_id": model.pad_id,
            **rope_config(model.positional),
        }

    def rules(self, model: ModelSpec) -> list[Rule]:
        bias = model.attention.params.bias
        hd = model.head_dim_value()
        rules = [same("embed.weight", "model.embed_tokens.weight")]
        for i in range(model.n_layers_of("decoder")):
            ours, theirs = f"stack.layers.{i}", f"model.layers.{i}"
            a, m = f"{theirs}.self_attn", f"{theirs}.mlp"
            rules += self_attention(f"{ours}.self_attn", f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.o_proj",
                                    model.n_heads * hd, kv_heads(model) * hd, bias)
            rules += norm(f"{ours}.self_res.norm", f"{theirs}.input_layernorm")
            rules += linear(f"{ours}.ffn.up", f"{m}.c_fc", bias) + linear(f"{ours}.ffn.down", f"{m}.c_proj", bias)
            rules += norm(f"{ours}.ffn_res.norm", f"{theirs}.post_attention_layernorm")
        rules += norm("stack.final_norm", "model.norm")
        if not model.tie_embeddings:
            rules.append(same("head.weight", "lm_head.weight"))
        return rules


FAMILY = Starcoder2()
