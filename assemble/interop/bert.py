"""BERT (``BertForMaskedLM``): post-norm encoder, token-type embeddings, embedding LayerNorm, MLM head."""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import HF_ACTIVATIONS, Config, Family, ffn_hidden
from .rules import Rule, linear, norm, same, self_attention


def encoder_layers(model: ModelSpec, theirs: str) -> list[Rule]:
    """BERT's encoder layers (``{theirs}.L.attention.self.query``, ...), also RoBERTa's and XLM-R's."""
    rules, size = [], model.n_heads * model.head_dim_value()
    for i in range(model.n_layers_of("encoder")):
        ours, layer = f"stack.layers.{i}", f"{theirs}.{i}"
        a = f"{layer}.attention"
        rules += self_attention(f"{ours}.self_attn", f"{a}.self.query", f"{a}.self.key", f"{a}.self.value",
                                f"{a}.output.dense", size, size, bias=True)
        rules += norm(f"{ours}.self_res.norm", f"{a}.output.LayerNorm")
        rules += linear(f"{ours}.ffn.up", f"{layer}.intermediate.dense", bias=True)
        rules += linear(f"{ours}.ffn.down", f"{layer}.output.dense", bias=True)
        rules += norm(f"{ours}.ffn_res.norm", f"{layer}.output.LayerNorm")
    return rules


class BERT(Family):
    """Hugging Face BERT with its MLM head (``cls.predictions``); the pooler and NSP head are not kept."""

    name = "bert"
    model_types = ("bert",)
    prefix = "bert."
    kind = "encoder"
    blocks = {"positional": ("learned",), "norm": ("layernorm",), "ffn": ("mlp",)}
    ignore = (r"^bert\.embeddings\.position_ids$", r"^bert\.pooler\.", r"^cls\.seq_relationship\.")

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise config.unsupported("position_embedding_type", config.get("position_embedding_type"), "absolute")
        if config.get("is_decoder", False) or config.get("add_cross_attention", False):
            raise config.unsupported("is_decoder", True, "false (an encoder)")
        vocab, eps = config.need("vocab_size"), config.get("layer_norm_eps", 1e-12)
        activation = config.activation("hidden_act", "gelu")
        model: dict[str, Any] = {
            "kind": "encoder", "vocab_size": vocab, "max_len": config.get("max_position_embeddings", 512),
            "d_model": config.need("hidden_size"), "n_heads": config.need("num_attention_heads"),
            "n_layers": config.need("num_hidden_layers"), "dropout": config.get("hidden_dropout_prob", 0.1),
            "positional": "learned", "residual": "post",
            "norm": {"type": "layernorm", "eps": eps},
            "attention": {"type": "mha", "dropout": config.get("attention_probs_dropout_prob", 0.1)},
            "ffn": {"type": "mlp", "activation": activation, "hidden": config.need("intermediate_size")},
            "mask": ["padding"],
            "embedding_norm": {"type": "layernorm", "eps": eps},
            "head": {"type": "mlm", "activation": activation, "eps": eps},
            "tie_embeddings": config.get("tie_word_embeddings", True),
            **config.token_ids(vocab, pad_id="pad_token_id", bos_id="bos_token_id", eos_id="eos_token_id"),
        }
        n_types = config.get("type_vocab_size", 2)
        if n_types:
            model["token_type"] = {"type": "learned", "n_types": n_types}
        return model

    def config(self, model: ModelSpec) -> dict[str, Any]:
        return {
            "model_type": "bert", "architectures": ["BertForMaskedLM"],
            "vocab_size": model.vocab_size, "max_position_embeddings": model.max_len,
            "hidden_size": model.d_model, "num_attention_heads": model.n_heads,
            "num_hidden_layers": model.n_layers_of("encoder"), "intermediate_size": ffn_hidden(model, model.ffn),
            "hidden_act": HF_ACTIVATIONS[model.ffn.params.activation],
            "hidden_dropout_prob": model.dropout, "attention_probs_dropout_prob": model.attention.params.dropout,
            "layer_norm_eps": model.norm.params.eps,
            "type_vocab_size": model.token_type.params.n_types if model.token_type is not None else 0,
            "position_embedding_type": "absolute", "tie_word_embeddings": model.tie_embeddings,
            "pad_token_id": model.pad_id, "bos_token_id": model.bos_id, "eos_token_id": model.eos_id,
        }

    def rules(self, model: ModelSpec) -> list[Rule]:
        e = "bert.embeddings"
        rules = [same("embed.weight", f"{e}.word_embeddings.weight"),
                 same("stack.positional.weight", f"{e}.position_embeddings.weight"),
                 *norm("embed.norm", f"{e}.LayerNorm")]
        if model.token_type is not None:
            rules.append(same("embed.token_types.weight", f"{e}.token_type_embeddings.weight"))
        rules += encoder_layers(model, "bert.encoder.layer")
        p = "cls.predictions"
        rules += linear("head.transform", f"{p}.transform.dense", bias=True)
        rules += norm("head.norm", f"{p}.transform.LayerNorm")
        if model.tie_embeddings:
            rules.append(same("head.bias", f"{p}.bias"))  # the decoder's bias is tied to it
        else:
            rules.append(same("head.weight", f"{p}.decoder.weight"))
            # untied, the decoder's own bias is used; cls.predictions.bias is written alongside it
            rules.append(Rule("head.bias", (f"{p}.decoder.bias", f"{p}.bias"), lambda ts: ts[0], lambda t: [t, t.clone()]))
        return rules

    def ignored(self, model: ModelSpec) -> tuple[str, ...]:
        tied = (r"^cls\.predictions\.decoder\.(weight|bias)$",) if model.tie_embeddings else ()
        return self.ignore + tied


FAMILY = BERT()
