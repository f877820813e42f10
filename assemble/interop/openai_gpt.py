"""GPT (``OpenAIGPTLMHeadModel``, the first GPT): GPT-2's Conv1D names and fused q | k | v, but post-norm layers
(``ln_1`` after attention, ``ln_2`` after the MLP, no final norm), an MLP of 4 d_model, and ``afn: gelu``
meaning the tanh approximation (transformers maps it to ``gelu_new``).
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import Config, Family
from .rules import Rule, same, transposed

AFN = {"gelu": "gelu_tanh", "relu": "relu", "silu": "silu", "swish": "silu"}  # transformers' ACT_FNS of openai
HF_AFN = {"gelu_tanh": "gelu", "relu": "relu", "silu": "silu"}


class OpenAIGPT(Family):
    """Hugging Face OpenAI GPT."""

    name = "openai-gpt"
    model_types = ("openai-gpt",)
    prefix = "transformer."
    kind = "decoder"
    blocks = {"positional": ("learned",), "norm": ("layernorm",), "ffn": ("mlp",)}

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        d_model, vocab = config.need("n_embd"), config.need("vocab_size")
        afn = config.get("afn", "gelu")
        if afn not in AFN:
            raise config.unsupported("afn", afn, ", ".join(sorted(AFN)))
        return {
            "kind": "decoder", "vocab_size": vocab, "max_len": config.get("n_positions", 512), "d_model": d_model,
            "n_heads": config.need("n_head"), "n_layers": config.need("n_layer"),
            "dropout": config.get("resid_pdrop", 0.1), "positional": "learned", "residual": "post",
            "norm": {"type": "layernorm", "eps": config.get("layer_norm_epsilon", 1e-5)},
            "attention": {"type": "mha", "dropout": config.get("attn_pdrop", 0.1)},
            "ffn": {"type": "mlp", "activation": AFN[afn], "hidden": 4 * d_model},
            "tie_embeddings": config.get("tie_word_embeddings", True),
            **config.token_ids(vocab, bos_id="bos_token_id", eos_id="eos_token_id", pad_id="pad_token_id"),
        }

    def config(self, model: ModelSpec) -> dict[str, Any]:
        return {
            "model_type": "openai-gpt", "architectures": ["OpenAIGPTLMHeadModel"],
            "vocab_size": model.vocab_size, "n_positions": model.max_len, "n_embd": model.d_model,
            "n_head": model.n_heads, "n_layer": model.n_layers_of("decoder"), "afn": HF_AFN[model.ffn.params.activation],
            "resid_pdrop": model.dropout, "embd_pdrop": model.dropout, "attn_pdrop": model.attention.params.dropout,
            "layer_norm_epsilon": model.norm.params.eps, "tie_word_embeddings": model.tie_embeddings,
            "bos_token_id": model.bos_id, "eos_token_id": model.eos_id, "pad_token_id": model.pad_id,
        }

    def rules(self, model: ModelSpec) -> list[Rule]:
        t = "transformer"
        rules = [same("embed.weight", f"{t}.tokens_embed.weight"),
                 same("stack.positional.weight", f"{t}.positions_embed.weight")]
        for i in range(model.n_layers_of("decoder")):
            ours, theirs = f"stack.layers.{i}", f"{t}.h.{i}"
            rules += [
                transposed(f"{ours}.self_attn.qkv.weight", f"{theirs}.attn.c_attn.weight"),  # q | k | v
                same(f"{ours}.self_attn.qkv.bias", f"{theirs}.attn.c_attn.bias"),
                transposed(f"{ours}.self_attn.out.weight", f"{theirs}.attn.c_proj.weight"),
                same(f"{ours}.self_attn.out.bias", f"{theirs}.attn.c_proj.bias"),
                same(f"{ours}.self_res.norm.weight", f"{theirs}.ln_1.weight"),
                same(f"{ours}.self_res.norm.bias", f"{theirs}.ln_1.bias"),
                transposed(f"{ours}.ffn.up.weight", f"{theirs}.mlp.c_fc.weight"),
                same(f"{ours}.ffn.up.bias", f"{theirs}.mlp.c_fc.bias"),
                transposed(f"{ours}.ffn.down.weight", f"{theirs}.mlp.c_proj.weight"),
                same(f"{ours}.ffn.down.bias", f"{theirs}.mlp.c_proj.bias"),
                same(f"{ours}.ffn_res.norm.weight", f"{theirs}.ln_2.weight"),
                same(f"{ours}.ffn_res.norm.bias", f"{theirs}.ln_2.bias"),
            ]
        if not model.tie_embeddings:
            rules.append(same("head.weight", "lm_head.weight"))
        return rules


FAMILY = OpenAIGPT()
