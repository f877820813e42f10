"""DistilBERT (``DistilBertForMaskedLM``): BERT without token types (post-norm, learned positions,
embedding LayerNorm, MLM head), every LayerNorm with eps 1e-12.
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import HF_ACTIVATIONS, Config, Family, ffn_hidden
from .rules import Rule, linear, norm, same, self_attention

EPS = 1e-12  # fixed in transformers' DistilBERT


class DistilBERT(Family):
    """Hugging Face DistilBERT with its MLM head (``vocab_transform``, ``vocab_layer_norm``, ``vocab_projector``)."""

    name = "distilbert"
    model_types = ("distilbert",)
    prefix = "distilbert."
    kind = "encoder"
    blocks = {"positional": ("learned",), "norm": ("layernorm",), "ffn": ("mlp",)}
    ignore = (r"^distilbert\.embeddings\.position_ids$",)

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        if config.get("sinusoidal_pos_embds", False):
            raise config.unsupported("sinusoidal_pos_embds", True, "false (learned positions)")
        vocab, activation = config.need("vocab_size"), config.activation("activation", "gelu")
        return {
            "kind": "encoder", "vocab_size": vocab, "max_len": config.get("max_position_embeddings", 512),
            "d_model": config.need("dim"), "n_heads": config.need("n_heads"), "n_layers": config.need("n_layers"),
            "dropout": config.get("dropout", 0.1), "positional": "learned", "residual": "post",
            "norm": {"type": "layernorm", "eps": EPS},
            "attention": {"type": "mha", "dropout": config.get("attention_dropout", 0.1)},
            "ffn": {"type": "mlp", "activation": activation, "hidden": config.need("hidden_dim")},
            "mask": ["padding"], "embedding_norm": {"type": "layernorm", "eps": EPS},
            "head": {"type": "mlm", "activation": activation, "eps": EPS},
            "tie_embeddings": config.get("tie_word_embeddings", True),
            **config.token_ids(vocab, pad_id="pad_token_id", bos_id="bos_token_id", eos_id="eos_token_id"),
        }

    def config(self, model: ModelSpec) -> dict[str, Any]:
        return {
            "model_type": "distilbert", "architectures": ["DistilBertForMaskedLM"],
            "vocab_size": model.vocab_size, "max_position_embeddings": model.max_len, "dim": model.d_model,
            "n_heads": model.n_heads, "n_layers": model.n_layers_of("encoder"),
            "hidden_dim": ffn_hidden(model, model.ffn), "activation": HF_ACTIVATIONS[model.ffn.params.activation],
            "dropout": model.dropout, "attention_dropout": model.attention.params.dropout,
            "sinusoidal_pos_embds": False, "tie_word_embeddings": model.tie_embeddings,
            "pad_token_id": model.pad_id, "bos_token_id": model.bos_id, "eos_token_id": model.eos_id,
        }

    def rules(self, model: ModelSpec) -> list[Rule]:
        e = "distilbert.embeddings"
        rules = [same("embed.weight", f"{e}.word_embeddings.weight"),
                 same("stack.positional.weight", f"{e}.position_embeddings.weight"), *norm("embed.norm", f"{e}.LayerNorm")]
        size = model.n_heads * model.head_dim_value()
        for i in range(model.n_layers_of("encoder")):
            ours, theirs = f"stack.layers.{i}", f"distilbert.transformer.layer.{i}"
            a = f"{theirs}.attention"
            rules += self_attention(f"{ours}.self_attn", f"{a}.q_lin", f"{a}.k_lin", f"{a}.v_lin", f"{a}.out_lin",
                                    size, size, bias=True)
            rules += norm(f"{ours}.self_res.norm", f"{theirs}.sa_layer_norm")
            rules += linear(f"{ours}.ffn.up", f"{theirs}.ffn.lin1", bias=True)
            rules += linear(f"{ours}.ffn.down", f"{theirs}.ffn.lin2", bias=True)
            rules += norm(f"{ours}.ffn_res.norm", f"{theirs}.output_layer_norm")
        rules += linear("head.transform", "vocab_transform", bias=True) + norm("head.norm", "vocab_layer_norm")
        rules.append(same("head.bias", "vocab_projector.bias"))
        if not model.tie_embeddings:
            rules.append(same("head.weight", "vocab_projector.weight"))
        return rules

    def ignored(self, model: ModelSpec) -> tuple[str, ...]:
        return self.ignore + ((r"^vocab_projector\.weight$",) if model.tie_embeddings else ())


FAMILY = DistilBERT()
