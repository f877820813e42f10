"""BioGPT (``BioGptForCausalLM``): a pre-norm GPT with learned positions read at an offset of 2 (a table of
``max_position_embeddings`` + 2 rows), scaled embeddings (``scale_embedding``), biases on every projection and
a tied ``output_projection``. Its LayerNorms are ``nn.LayerNorm``'s default eps 1e-5: transformers does not
read ``layer_norm_eps`` for them, and neither does import.
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import HF_ACTIVATIONS, Config, Family, ffn_hidden
from .rules import Rule, linear, norm, same, self_attention

OFFSET = 2  # fixed in transformers' BioGptLearnedPositionalEmbedding
EPS = 1e-5


class BioGPT(Family):
    """Hugging Face BioGPT."""

    name = "biogpt"
    model_types = ("biogpt",)
    prefix = "biogpt."
    kind = "decoder"
    blocks = {"positional": ("learned",), "norm": ("layernorm",), "ffn": ("mlp",)}

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        vocab = config.need("vocab_size")
        return {
            "kind": "decoder", "vocab_size": vocab, "max_len": config.get("max_position_embeddings", 1024),
            "d_model": config.need("hidden_size"), "n_heads": config.need("num_attention_heads"),
            "n_layers": config.need("num_hidden_layers"), "dropout": config.get("hidden_dropout_prob", 0.1),
            "positional": {"type": "learned", "offset": OFFSET}, "residual": "pre",
            "norm": {"type": "layernorm", "eps": EPS},
            "attention": {"type": "mha", "dropout": config.get("attention_probs_dropout_prob", 0.1)},
            "ffn": {"type": "mlp", "activation": config.activation("hidden_act", "gelu"),
                    "hidden": config.need("intermediate_size")},
            "scale_embeddings": config.get("scale_embedding", True),
            "tie_embeddings": config.get("tie_word_embeddings", True),
            **config.token_ids(vocab, bos_id="bos_token_id", eos_id="eos_token_id", pad_id="pad_token_id"),
        }

    def config(self, model: ModelSpec) -> dict[str, Any]:
        return {
            "model_type": "biogpt", "architectures": ["BioGptForCausalLM"],
            "vocab_size": model.vocab_size, "max_position_embeddings": model.max_len, "hidden_size": model.d_model,
            "num_attention_heads": model.n_heads, "num_hidden_layers": model.n_layers_of("decoder"),
            "intermediate_size": ffn_hidden(model, model.ffn), "hidden_act": HF_ACTIVATIONS[model.ffn.params.activation],
            "hidden_dropout_prob": model.dropout, "attention_probs_dropout_prob": model.attention.params.dropout,
            "scale_embedding": model.scale_embeddings, "tie_word_embeddings": model.tie_embeddings,
            "bos_token_id": model.bos_id, "eos_token_id": model.eos_id, "pad_token_id": model.pad_id,
        }

    def rules(self, model: ModelSpec) -> list[Rule]:
        size, b = model.d_model, "biogpt"
        rules = [same("embed.weight", f"{b}.embed_tokens.weight"),
                 same("stack.positional.weight", f"{b}.embed_positions.weight")]
        for i in range(model.n_layers_of("decoder")):
            ours, theirs = f"stack.layers.{i}", f"{b}.layers.{i}"
            a = f"{theirs}.self_attn"
            rules += self_attention(f"{ours}.self_attn", f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj",
                                    f"{a}.out_proj", size, size, bias=True)
            rules += norm(f"{ours}.self_res.norm", f"{theirs}.self_attn_layer_norm")
            rules += linear(f"{ours}.ffn.up", f"{theirs}.fc1", True) + linear(f"{ours}.ffn.down", f"{theirs}.fc2", True)
            rules += norm(f"{ours}.ffn_res.norm", f"{theirs}.final_layer_norm")
        rules += norm("stack.final_norm", f"{b}.layer_norm")
        if not model.tie_embeddings:
            rules.append(same("head.weight", "output_projection.weight"))
        return rules

    def ignored(self, model: ModelSpec) -> tuple[str, ...]:
        return self.ignore + ((r"^output_projection\.weight$",) if model.tie_embeddings else ())


FAMILY = BioGPT()
