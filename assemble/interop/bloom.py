"""BLOOM (``BloomForCausalLM``): ALiBi instead of positions, a LayerNorm after the embeddings, pre-norm
LayerNorm layers, a fused QKV stored per head ([h, 3, hd] rows), a tanh-GELU MLP of 4 d_model, biases.
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import Config, Family, ffn_hidden
from .rules import Rule, linear, norm, per_head_fused, same


class BLOOM(Family):
    """Hugging Face BLOOM."""

    name = "bloom"
    model_types = ("bloom",)
    prefix = "transformer."
    kind = "decoder"
    blocks = {"positional": ("alibi",), "norm": ("layernorm",), "ffn": ("mlp",)}

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        if config.get("apply_residual_connection_post_layernorm", False):
            raise config.unsupported("apply_residual_connection_post_layernorm", True,
                                     "false (the residual adds the layer's input, not its norm)")
        if config.get("slow_but_exact", False) and config.get("pretraining_tp", 1) > 1:
            raise config.unsupported("slow_but_exact", True, "false (one matrix product per projection)")
        d_model, vocab = config.need("hidden_size", "n_embed"), config.need("vocab_size")
        eps = config.get("layer_norm_epsilon", 1e-5)
        return {
            "kind": "decoder", "vocab_size": vocab, "max_len": config.get("seq_length", 2048), "d_model": d_model,
            "n_heads": config.need("n_head", "num_attention_heads"),
            "n_layers": config.need("n_layer", "num_hidden_layers"),
            "dropout": config.get("hidden_dropout", 0.0), "positional": "alibi", "residual": "pre",
            "norm": {"type": "layernorm", "eps": eps},
            "attention": {"type": "mha", "dropout": config.get("attention_dropout", 0.0)},
            "ffn": {"type": "mlp", "activation": "gelu_tanh", "hidden": 4 * d_model},
            "embedding_norm": {"type": "layernorm", "eps": eps},
            "tie_embeddings": config.get("tie_word_embeddings", True),
            **config.token_ids(vocab, bos_id="bos_token_id", eos_id="eos_token_id", pad_id="pad_token_id"),
        }

    def config(self, model: ModelSpec) -> dict[str, Any]:
        if ffn_hidden(model, model.ffn) != 4 * model.d_model or model.ffn.params.activation != "gelu_tanh":
            raise ValueError("BLOOM's MLP is 4 d_model wide with a tanh GELU")
        return {
            "model_type": "bloom", "architectures": ["BloomForCausalLM"],
            "vocab_size": model.vocab_size, "seq_length": model.max_len, "hidden_size": model.d_model,
            "n_head": model.n_heads, "n_layer": model.n_layers_of("decoder"),
            "layer_norm_epsilon": model.norm.params.eps, "hidden_dropout": model.dropout,
            "attention_dropout": model.attention.params.dropout, "apply_residual_connection_post_layernorm": False,
            "pretraining_tp": 1, "slow_but_exact": False, "tie_word_embeddings": model.tie_embeddings,
            "bos_token_id": model.bos_id, "eos_token_id": model.eos_id, "pad_token_id": model.pad_id,
        }

    def rules(self, model: ModelSpec) -> list[Rule]:
        t = "transformer"
        rules = [same("embed.weight", f"{t}.word_embeddings.weight"), *norm("embed.norm", f"{t}.word_embeddings_layernorm")]
        hd = model.head_dim_value()
        for i in range(model.n_layers_of("decoder")):
            ours, theirs = f"stack.layers.{i}", f"{t}.h.{i}"
            a = f"{theirs}.self_attention"
            rules += [per_head_fused(f"{ours}.self_attn.qkv.{p}", f"{a}.query_key_value.{p}", model.n_heads, hd)
                      for p in ("weight", "bias")]
            rules += linear(f"{ours}.self_attn.out", f"{a}.dense", bias=True)
            rules += norm(f"{ours}.self_res.norm", f"{theirs}.input_layernorm")
            rules += linear(f"{ours}.ffn.up", f"{theirs}.mlp.dense_h_to_4h", bias=True)
            rules += linear(f"{ours}.ffn.down", f"{theirs}.mlp.dense_4h_to_h", bias=True)
            rules += norm(f"{ours}.ffn_res.norm", f"{theirs}.post_attention_layernorm")
        rules += norm("stack.final_norm", f"{t}.ln_f")
        if not model.tie_embeddings:
            rules.append(same("head.weight", "lm_head.weight"))
        return rules


FAMILY = BLOOM()
