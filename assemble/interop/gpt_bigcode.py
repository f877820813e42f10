"""GPT-BigCode (``GPTBigCodeForCausalLM``, SantaCoder / StarCoder 1): GPT-2 with nn.Linear weights and
multi-query attention (one key/value head, ``multi_query``); without it, c_attn is fused per head.
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import HF_ACTIVATIONS, Config, Family, ffn_hidden, kv_heads
from .rules import Rule, linear, norm, per_head_fused, same


class GPTBigCode(Family):
    """Hugging Face GPT-BigCode: multi-query attention (``mqa``) or, with ``multi_query: false``, ``mha``."""

    name = "gpt_bigcode"
    model_types = ("gpt_bigcode",)
    prefix = "transformer."
    kind = "decoder"
    blocks = {"positional": ("learned",), "norm": ("layernorm",), "ffn": ("mlp",)}
    ignore = (r"\.attn\.(bias|masked_bias)$",)

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        if config.get("add_cross_attention", False):
            raise config.unsupported("add_cross_attention", True, "false")
        d_model, vocab = config.need("n_embd"), config.need("vocab_size")
        attention: dict[str, Any] = {"type": "mqa" if config.get("multi_query", True) else "mha",
                                     "dropout": config.get("attn_pdrop", 0.1)}
        if not config.get("scale_attn_weights", True):
            attention["scale"] = 1.0
        return {
            "kind": "decoder", "vocab_size": vocab, "max_len": config.need("n_positions"), "d_model": d_model,
            "n_heads": config.need("n_head"), "n_layers": config.need("n_layer"),
            "dropout": config.get("resid_pdrop", 0.1), "positional": "learned", "residual": "pre",
            "norm": {"type": "layernorm", "eps": config.get("layer_norm_epsilon", 1e-5)},
            "attention": attention,
            "ffn": {"type": "mlp", "activation": config.activation("activation_function", "gelu_pytorch_tanh"),
                    "hidden": config.get("n_inner") or 4 * d_model},
            "tie_embeddings": config.get("tie_word_embeddings", True),
            **config.token_ids(vocab, bos_id="bos_token_id", eos_id="eos_token_id", pad_id="pad_token_id"),
        }

    def config(self, model: ModelSpec) -> dict[str, Any]:
        attention, ffn = model.attention.params, model.ffn.params
        n_kv = kv_heads(model)
        if n_kv not in (1, model.n_heads):
            raise ValueError("GPT-BigCode has one key/value head (multi_query) or one per head")
        return {
            "model_type": "gpt_bigcode", "architectures": ["GPTBigCodeForCausalLM"],
            "vocab_size": model.vocab_size, "n_positions": model.max_len, "n_embd": model.d_model,
            "n_head": model.n_heads, "n_layer": model.n_layers_of("decoder"), "n_inner": ffn_hidden(model, model.ffn),
            "multi_query": n_kv == 1 and model.n_heads > 1, "activation_function": HF_ACTIVATIONS[ffn.activation],
            "resid_pdrop": model.dropout, "embd_pdrop": model.dropout, "attn_pdrop": attention.dropout,
            "layer_norm_epsilon": model.norm.params.eps, "scale_attn_weights": attention.scale is None,
            "tie_word_embeddings": model.tie_embeddings,
            "bos_token_id": model.bos_id, "eos_token_id": model.eos_id, "pad_token_id": model.pad_id,
        }

    def rules(self, model: ModelSpec) -> list[Rule]:
        rules = [same("embed.weight", "transformer.wte.weight"), same("stack.positional.weight", "transformer.wpe.weight")]
        hd, multi_query = model.head_dim_value(), kv_heads(model) == 1 and model.n_heads > 1
        for i in range(model.n_layers_of("decoder")):
            ours, theirs = f"stack.layers.{i}", f"transformer.h.{i}"
            if multi_query:  # [q | k | v]: our layout
                rules += linear(f"{ours}.self_attn.qkv", f"{theirs}.attn.c_attn", bias=True)
            else:
                rules += [per_head_fused(f"{ours}.self_attn.qkv.{p}", f"{theirs}.attn.c_attn.{p}", model.n_heads, hd)
                          for p in ("weight", "bias")]
            rules += linear(f"{ours}.self_attn.out", f"{theirs}.attn.c_proj", bias=True)
            rules += norm(f"{ours}.self_res.norm", f"{theirs}.ln_1") + norm(f"{ours}.ffn_res.norm", f"{theirs}.ln_2")
            rules += linear(f"{ours}.ffn.up", f"{theirs}.mlp.c_fc", bias=True)
            rules += linear(f"{ours}.ffn.down", f"{theirs}.mlp.c_proj", bias=True)
        rules += norm("stack.final_norm", "transformer.ln_f")
        if not model.tie_embeddings:
            rules.append(same("head.weight", "lm_head.weight"))
        return rules


FAMILY = GPTBigCode()
