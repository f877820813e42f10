"""Marian (``MarianMTModel``): the paper's post-norm encoder-decoder with [sin | cos] sinusoidal
positions, optionally scaled embeddings, and a logits bias (``final_logits_bias``).
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import HF_ACTIVATIONS, Config, Family, ffn_hidden
from .rules import Rule, cross_attention, linear, norm, reshaped, same, self_attention

UNSHARED = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight")


def layer_rules(ours: str, theirs: str, size: int, cross: bool) -> list[Rule]:
    """One Marian / BART / mBART layer: ``self_attn``, ``encoder_attn`` (decoder), ``fc1`` / ``fc2`` and their norms."""
    a = f"{theirs}.self_attn"
    rules = self_attention(f"{ours}.self_attn", f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.out_proj",
                           size, size, bias=True)
    rules += norm(f"{ours}.self_res.norm", f"{theirs}.self_attn_layer_norm")
    if cross:
        c = f"{theirs}.encoder_attn"
        rules += cross_attention(f"{ours}.cross_attn", f"{c}.q_proj", f"{c}.k_proj", f"{c}.v_proj",
                                 f"{c}.out_proj", size, bias=True)
        rules += norm(f"{ours}.cross_res.norm", f"{theirs}.encoder_attn_layer_norm")
    rules += linear(f"{ours}.ffn.up", f"{theirs}.fc1", bias=True)
    rules += linear(f"{ours}.ffn.down", f"{theirs}.fc2", bias=True)
    return rules + norm(f"{ours}.ffn_res.norm", f"{theirs}.final_layer_norm")


class Marian(Family):
    """Hugging Face Marian; the decoder starts from the pad token (the spec's bos_id)."""

    name = "marian"
    model_types = ("marian",)
    architecture = "MarianMTModel"
    residual = "post"  # Pegasus: pre, with a final norm per side
    prefix = "model."
    kind = "encoder_decoder"
    blocks = {"positional": ("sinusoidal",), "norm": ("layernorm",), "ffn": ("mlp",)}
    ignore = (r"\.embed_positions\.weight$",)  # the sinusoidal table, computed rather than stored

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        vocab, heads = config.need("vocab_size"), config.need("encoder_attention_heads")
        if config.get("decoder_attention_heads", heads) != heads:
            raise config.error(f"encoder_attention_heads ({heads}) and decoder_attention_heads "
                               f"({config.get('decoder_attention_heads')}) differ; stackform uses one n_heads")
        if config.get("decoder_vocab_size", vocab) != vocab:
            raise config.error(f"decoder_vocab_size ({config.get('decoder_vocab_size')}) differs from vocab_size "
                               f"({vocab}); stackform uses one vocabulary")
        activation = config.activation("activation_function", "gelu")
        layers = {side: config.need(f"{side}_layers") for side in ("encoder", "decoder")}
        ffn = {side: {"type": "mlp", "activation": activation, "hidden": config.need(f"{side}_ffn_dim")}
               for side in ("encoder", "decoder")}
        sides: dict[str, Any] = {}
        if layers["encoder"] != layers["decoder"]:
            sides = {side: {"n_layers": n} for side, n in layers.items()}
        if ffn["encoder"] != ffn["decoder"]:
            sides["decoder"] = sides.get("decoder", {}) | {"ffn": ffn["decoder"]}
        share, tie = config.get("share_encoder_decoder_embeddings", True), config.get("tie_word_embeddings", True)
        if share and not tie and names is not None and set(UNSHARED) <= names:
            share = False  # transformers 5 unties these too: each stack reads its own table; model.shared is unused
        return {
            "kind": "encoder_decoder", "vocab_size": vocab, "max_len": config.get("max_position_embeddings", 1024),
            "d_model": config.need("d_model"), "n_heads": heads, "dropout": config.get("dropout", 0.1),
            "n_layers": None if sides.get("encoder") else layers["encoder"],
            "positional": {"type": "sinusoidal", "layout": "halves"}, "residual": self.residual,
            "norm": {"type": "layernorm", "eps": 1e-5},
            "attention": {"type": "mha", "dropout": config.get("attention_dropout", 0.0)},
            "ffn": ffn["encoder"], **sides,
            "scale_embeddings": config.get("scale_embedding", False),
            "share_embeddings": share, "tie_embeddings": tie,
            "head": {"type": "linear", "bias": True},
            **config.token_ids(vocab, pad_id="pad_token_id", eos_id="eos_token_id"),
            **config.token_ids(vocab, bos_id="decoder_start_token_id" if config.get("decoder_start_token_id")
                               is not None else "pad_token_id"),
        }

    def config(self, model: ModelSpec) -> dict[str, Any]:
        encoder, decoder = model.plan("encoder"), model.plan("decoder")
        activation = encoder.layers[0].ffn.params.activation
        return {
            "model_type": self.model_types[0], "architectures": [self.architecture], "is_encoder_decoder": True,
            "vocab_size": model.vocab_size, "decoder_vocab_size": model.vocab_size,
            "max_position_embeddings": model.max_len, "d_model": model.d_model,
            "encoder_attention_heads": model.n_heads, "decoder_attention_heads": model.n_heads,
            "encoder_layers": len(encoder.layers), "decoder_layers": len(decoder.layers),
            "encoder_ffn_dim": ffn_hidden(model, encoder.layers[0].ffn),
            "decoder_ffn_dim": ffn_hidden(model, decoder.layers[0].ffn),
            "activation_function": {"silu": "swish"}.get(activation, HF_ACTIVATIONS[activation]),
            "dropout": model.dropout, "attention_dropout": model.attention.params.dropout,
            "scale_embedding": model.scale_embeddings, "share_encoder_decoder_embeddings": model.share_embeddings,
            "tie_word_embeddings": model.tie_embeddings,
            "pad_token_id": model.pad_id, "eos_token_id": model.eos_id, "decoder_start_token_id": model.bos_id,
            "forced_eos_token_id": model.eos_id,
        }

    def generation(self, model: ModelSpec) -> dict[str, Any]:
        out = {"decoder_start_token_id": model.bos_id, "eos_token_id": model.eos_id, "pad_token_id": model.pad_id,
               "forced_eos_token_id": model.eos_id}
        return {k: v for k, v in out.items() if v is not None}

    def rules(self, model: ModelSpec) -> list[Rule]:
        if model.share_embeddings:
            rules = [same("src_embed.weight", "model.shared.weight")]
        else:
            rules = [same("src_embed.weight", "model.encoder.embed_tokens.weight"),
                     same("tgt_embed.weight", "model.decoder.embed_tokens.weight")]
        size = model.n_heads * model.head_dim_value()
        for side in ("encoder", "decoder"):
            for i in range(model.n_layers_of(side)):
                rules += layer_rules(f"{side}.layers.{i}", f"model.{side}.layers.{i}", size, side == "decoder")
            if self.residual == "pre":  # the final norm of a pre-norm stack
                rules += norm(f"{side}.final_norm", f"model.{side}.layer_norm")
        rules.append(reshaped("head.bias", "final_logits_bias", (1, model.vocab_size)))
        if not model.tie_embeddings:
            rules.append(same("head.weight", "lm_head.weight"))
        return rules

    def ignored(self, model: ModelSpec) -> tuple[str, ...]:
        if model.share_embeddings:
            return super().ignored(model) + (r"^model\.(encoder|decoder)\.embed_tokens\.weight$",)
        return super().ignored(model) + (r"^model\.shared\.weight$",)  # unused when each stack has its own

    def copies(self, model: ModelSpec) -> dict[str, str]:
        # shared but untied: transformers 5 does not tie the stacks' tables to model.shared either, so each
        # needs its own copy in the file (else from_pretrained initializes them at random)
        if model.share_embeddings and not model.tie_embeddings:
            return {name: "model.shared.weight" for name in UNSHARED}
        return {}


FAMILY = Marian()
