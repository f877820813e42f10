"""RoBERTa (``RobertaForMaskedLM``) and XLM-R (``XLMRobertaForMaskedLM``, the same architecture): BERT's
post-norm encoder whose learned positions start at ``pad_token_id + 1``, and an MLM head with a fixed GELU.

Transformers numbers the positions of the non-pad tokens only (``cumsum(ids != pad) + pad``): in a row
without pad tokens, or right-padded, token i reads row ``pad + 1 + i``, which is stackform's
``positional: {type: learned, offset: pad + 1}`` exactly (the table keeps all ``max_position_embeddings``
rows; ``max_len`` is that minus the offset). Pad tokens read row ``pad`` there and row ``offset + i`` here:
their outputs differ, and no real token sees them (the padding mask hides them as keys).
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .bert import encoder_layers
from .family import HF_ACTIVATIONS, Config, Family, ffn_hidden
from .rules import Rule, linear, norm, same

HEAD_ACTIVATION = "gelu"  # RobertaLMHead calls gelu whatever hidden_act says


class RoBERTa(Family):
    """Hugging Face RoBERTa with its MLM head (``lm_head``); the pooler is not kept."""

    name = "roberta"
    model_types = ("roberta",)
    architecture = "RobertaForMaskedLM"
    prefix = "roberta."
    kind = "encoder"
    blocks = {"positional": ("learned",), "norm": ("layernorm",), "ffn": ("mlp",), "head": ("mlm",)}
    ignore = (r"^\w+\.embeddings\.(position_ids|token_type_ids)$", r"^\w+\.pooler\.")  # under the prefix

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise config.unsupported("position_embedding_type", config.get("position_embedding_type"), "absolute")
        for key in ("is_decoder", "add_cross_attention"):
            if config.get(key, False):
                raise config.unsupported(key, config.get(key), "false (an encoder)")
        vocab, eps = config.need("vocab_size"), config.get("layer_norm_eps", 1e-12)
        pad = config.need("pad_token_id")
        if not isinstance(pad, int) or not 0 <= pad < vocab:
            raise config.unsupported("pad_token_id", pad, f"a token id below vocab_size ({vocab}): positions "
                                     "start after it")
        n_positions = config.get("max_position_embeddings", 514)
        n_types = config.get("type_vocab_size", 2)
        if n_types < 1:
            raise config.unsupported("type_vocab_size", n_types, "1 or more (every token reads type 0)")
        return {
            "kind": "encoder", "vocab_size": vocab, "max_len": n_positions - (pad + 1),
            "d_model": config.need("hidden_size"), "n_heads": config.need("num_attention_heads"),
            "n_layers": config.need("num_hidden_layers"), "dropout": config.get("hidden_dropout_prob", 0.1),
            "positional": {"type": "learned", "offset": pad + 1}, "residual": "post",
            "norm": {"type": "layernorm", "eps": eps},
            "attention": {"type": "mha", "dropout": config.get("attention_probs_dropout_prob", 0.1)},
            "ffn": {"type": "mlp", "activation": config.activation("hidden_act", "gelu"),
                    "hidden": config.need("intermediate_size")},
            "mask": ["padding"], "token_type": {"type": "learned", "n_types": n_types},
            "embedding_norm": {"type": "layernorm", "eps": eps},
            "head": {"type": "mlm", "activation": HEAD_ACTIVATION, "eps": eps},
            "tie_embeddings": config.get("tie_word_embeddings", True), "pad_id": pad,
            **config.token_ids(vocab, bos_id="bos_token_id", eos_id="eos_token_id"),
        }

    def config(self, model: ModelSpec) -> dict[str, Any]:
        offset = model.positional.params.offset
        return {
            "model_type": self.model_types[0], "architectures": [self.architecture],
            "vocab_size": model.vocab_size, "max_position_embeddings": model.max_len + offset,
            "hidden_size": model.d_model, "num_attention_heads": model.n_heads,
            "num_hidden_layers": model.n_layers_of("encoder"), "intermediate_size": ffn_hidden(model, model.ffn),
            "hidden_act": HF_ACTIVATIONS[model.ffn.params.activation],
            "hidden_dropout_prob": model.dropout, "attention_probs_dropout_prob": model.attention.params.dropout,
            "layer_norm_eps": model.norm.params.eps,
            "type_vocab_size": model.token_type.params.n_types if model.token_type is not None else 0,
            "position_embedding_type": "absolute", "tie_word_embeddings": model.tie_embeddings,
            "pad_token_id": offset - 1, "bos_token_id": model.bos_id, "eos_token_id": model.eos_id,
        }

    def rules(self, model: ModelSpec) -> list[Rule]:
        e = f"{self.prefix}embeddings"
        rules = [same("embed.weight", f"{e}.word_embeddings.weight"),
                 same("stack.positional.weight", f"{e}.position_embeddings.weight"),
                 same("embed.token_types.weight", f"{e}.token_type_embeddings.weight"),
                 *norm("embed.norm", f"{e}.LayerNorm")]
        rules += encoder_layers(model, f"{self.prefix}encoder.layer")
        rules += linear("head.transform", "lm_head.dense", bias=True) + norm("head.norm", "lm_head.layer_norm")
        if model.tie_embeddings:
            rules.append(same("head.bias", "lm_head.bias"))  # the decoder's bias is tied to it
        else:
            rules.append(same("head.weight", "lm_head.decoder.weight"))
            # untied, the decoder's own bias is used; lm_head.bias is written alongside it (as BERT's)
            rules.append(Rule("head.bias", ("lm_head.decoder.bias", "lm_head.bias"), lambda ts: ts[0],
                              lambda t: [t, t.clone()]))
        return rules

    def ignored(self, model: ModelSpec) -> tuple[str, ...]:
        tied = (r"^lm_head\.decoder\.(weight|bias)$",) if model.tie_embeddings else ()
        return self.ignore + tied


FAMILY = RoBERTa()
