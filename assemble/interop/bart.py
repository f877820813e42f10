"""BART (``BartForConditionalGeneration``): a post-norm encoder-decoder with learned positions read at an
offset of 2 (a table of ``max_position_embeddings`` + 2 rows per side), a LayerNorm after each side's
embeddings (``layernorm_embedding``: the side's own ``embedding_norm``, also when the token table is
shared), optionally scaled embeddings, GELU MLPs and a logits bias (``final_logits_bias``).

Tied (every released BART), the encoder, the decoder and the head read ``model.shared``; untied,
transformers 5 gives each stack its own table (``model.shared`` is unused), and so does import.
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import HF_ACTIVATIONS, Config, Family, ffn_hidden
from .marian import layer_rules
from .rules import Rule, norm, reshaped, same

OFFSET = 2  # fixed in transformers' BartLearnedPositionalEmbedding
EPS = 1e-5  # nn.LayerNorm's default, every norm of BART
SIDES = ("encoder", "decoder")


class BART(Family):
    """Hugging Face BART; generation starts from ``decoder_start_token_id`` (the spec's bos_id)."""

    name = "bart"
    model_types = ("bart",)
    architecture = "BartForConditionalGeneration"
    prefix = "model."
    kind = "encoder_decoder"
    blocks = {"positional": ("learned",), "norm": ("layernorm",), "ffn": ("mlp",), "head": ("linear",)}
    residual = "post"  # mBART, Blenderbot: pre, with a final norm per side (``model.{side}.layer_norm``)
    offset = OFFSET  # Blenderbot: 0
    embedding_norm = True  # a LayerNorm after each side's embeddings (Blenderbot: none)

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        vocab, heads = config.need("vocab_size"), config.need("encoder_attention_heads")
        if config.get("decoder_attention_heads", heads) != heads:
            raise config.error(f"encoder_attention_heads ({heads}) and decoder_attention_heads "
                               f"({config.get('decoder_attention_heads')}) differ; stackform uses one n_heads")
        activation = config.activation("activation_function", "gelu")
        layers = {side: config.need(f"{side}_layers") for side in SIDES}
        own_norm = {"embedding_norm": {"type": "layernorm", "eps": EPS}} if self.embedding_norm else {}
        sides: dict[str, Any] = {side: dict(own_norm) for side in SIDES}
        ffn = {side: {"type": "mlp", "activation": activation, "hidden": config.need(f"{side}_ffn_dim")}
               for side in SIDES}
        if layers["encoder"] != layers["decoder"]:
            for side in SIDES:
                sides[side]["n_layers"] = layers[side]
        if ffn["encoder"] != ffn["decoder"]:
            sides["decoder"]["ffn"] = ffn["decoder"]
        tie = config.get("tie_word_embeddings", True)
        start = "decoder_start_token_id" if config.get("decoder_start_token_id") is not None else "bos_token_id"
        return {
            "kind": "encoder_decoder", "vocab_size": vocab, "max_len": config.get("max_position_embeddings", 1024),
            "d_model": config.need("d_model"), "n_heads": heads, "dropout": config.get("dropout", 0.1),
            "n_layers": None if "n_layers" in sides["encoder"] else layers["encoder"],
            "positional": {"type": "learned", "offset": self.offset}, "residual": self.residual,
            "norm": {"type": "layernorm", "eps": EPS},
            "attention": {"type": "mha", "dropout": config.get("attention_dropout", 0.0)},
            "ffn": ffn["encoder"], **{side: own for side, own in sides.items() if own},
            "scale_embeddings": config.get("scale_embedding", False),
            "share_embeddings": tie, "tie_embeddings": tie,  # untied: transformers 5 unties the stacks' tables too
            "head": {"type": "linear", "bias": True},
            **config.token_ids(vocab, pad_id="pad_token_id", eos_id="eos_token_id"),
            **config.token_ids(vocab, bos_id=start),
        }

    def config(self, model: ModelSpec) -> dict[str, Any]:
        encoder, decoder = model.plan("encoder"), model.plan("decoder")
        activation = encoder.layers[0].ffn.params.activation
        return {
            "model_type": self.model_types[0], "architectures": [self.architecture], "is_encoder_decoder": True,
            "vocab_size": model.vocab_size, "max_position_embeddings": model.max_len, "d_model": model.d_model,
            "encoder_attention_heads": model.n_heads, "decoder_attention_heads": model.n_heads,
            "encoder_layers": len(encoder.layers), "decoder_layers": len(decoder.layers),
            "encoder_ffn_dim": ffn_hidden(model, encoder.layers[0].ffn),
            "decoder_ffn_dim": ffn_hidden(model, decoder.layers[0].ffn),
            "activation_function": HF_ACTIVATIONS[activation],
            "dropout": model.dropout, "attention_dropout": model.attention.params.dropout,
            "scale_embedding": model.scale_embeddings, "tie_word_embeddings": model.tie_embeddings,
            "pad_token_id": model.pad_id, "eos_token_id": model.eos_id, "bos_token_id": model.bos_id,
            "decoder_start_token_id": model.bos_id, "forced_eos_token_id": model.eos_id,
        }

    def generation(self, model: ModelSpec) -> dict[str, Any]:
        out = {"decoder_start_token_id": model.bos_id, "bos_token_id": model.bos_id, "eos_token_id": model.eos_id,
               "pad_token_id": model.pad_id, "forced_eos_token_id": model.eos_id}
        return {k: v for k, v in out.items() if v is not None}

    def side_rules(self, model: ModelSpec, side: str) -> list[Rule]:
        """One stack's tensors besides its layers: positions, the embedding norm, a pre-norm stack's final norm."""
        embed = "src_embed" if side == "encoder" else "tgt_embed"
        rules = [same(f"{side}.positional.weight", f"model.{side}.embed_positions.weight")]
        if self.embedding_norm:
            rules += norm(f"{embed}.norm", f"model.{side}.layernorm_embedding")
        if self.residual == "pre":
            rules += norm(f"{side}.final_norm", f"model.{side}.layer_norm")
        return rules

    def rules(self, model: ModelSpec) -> list[Rule]:
        if model.share_embeddings:
            rules = [same("src_embed.weight", "model.shared.weight")]
        else:
            rules = [same("src_embed.weight", "model.encoder.embed_tokens.weight"),
                     same("tgt_embed.weight", "model.decoder.embed_tokens.weight")]
        size = model.n_heads * model.head_dim_value()
        for side in SIDES:
            rules += self.side_rules(model, side)
            for i in range(model.n_layers_of(side)):
                rules += layer_rules(f"{side}.layers.{i}", f"model.{side}.layers.{i}", size, side == "decoder")
        rules.append(reshaped("head.bias", "final_logits_bias", (1, model.vocab_size)))
        if not model.tie_embeddings:
            rules.append(same("head.weight", "lm_head.weight"))
        return rules

    def ignored(self, model: ModelSpec) -> tuple[str, ...]:
        if model.share_embeddings:  # copies of model.shared, when a file holds them
            return super().ignored(model) + (r"^model\.(encoder|decoder)\.embed_tokens\.weight$",)
        return super().ignored(model) + (r"^model\.shared\.weight$",)  # unused when each stack has its own


FAMILY = BART()
