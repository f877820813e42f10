"""T5 (``T5ForConditionalGeneration``): pre-norm RMS norm, unscaled attention without biases,
a bucketed relative position bias per stack, ReLU or gated-GELU FFN, shared embeddings.
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import ACTIVATIONS, HF_ACTIVATIONS, Config, Family, ffn_hidden, gate_activation, gated_ffn
from .rules import Rule, cross_attention, fused, linear, same, self_attention


class T5(Family):
    """Hugging Face T5 (v1.0 and v1.1); the decoder starts from the pad token (the spec's bos_id)."""

    name = "t5"
    model_types = ("t5",)
    kind = "encoder_decoder"
    blocks = {"positional": ("relative_bias",), "norm": ("rmsnorm",),
              "ffn": ("mlp", "swiglu", "geglu", "reglu")}
    ignore = (r"^(encoder|decoder)\.embed_tokens\.weight$",)

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        d_model, n_heads, vocab = config.need("d_model"), config.need("num_heads"), config.need("vocab_size")
        projection = config.get("feed_forward_proj", "relu")
        gated, name = projection.startswith("gated-"), projection.split("-")[-1]
        if isinstance(config.data.get("is_gated_act"), bool):  # transformers reads it over feed_forward_proj
            gated = config.data["is_gated_act"]
        if projection == "gated-gelu":
            activation = "gelu_tanh"  # transformers runs gated-gelu with gelu_new
        elif name in ACTIVATIONS and projection in (name, f"gated-{name}"):
            activation = ACTIVATIONS[name]
        else:
            raise config.unsupported("feed_forward_proj", projection, "relu, gelu, gated-gelu, gated-silu, gated-relu")
        hidden = config.need("d_ff")
        ffn = gated_ffn(activation, hidden, False) if gated else \
            {"type": "mlp", "activation": activation, "hidden": hidden, "bias": False}
        tied = "lm_head.weight" not in names if names is not None else config.get("tie_word_embeddings", True)
        rescale = config.get("scale_decoder_outputs", config.get("tie_word_embeddings", True))
        n_layers, n_decoder = config.need("num_layers"), config.get("num_decoder_layers", config.need("num_layers"))
        model: dict[str, Any] = {
            "kind": "encoder_decoder", "vocab_size": vocab, "max_len": config.get("n_positions", 512),
            "d_model": d_model, "n_heads": n_heads, "n_layers": n_layers, "dropout": config.get("dropout_rate", 0.1),
            "positional": {"type": "relative_bias", "num_buckets": config.get("relative_attention_num_buckets", 32),
                           "max_distance": config.get("relative_attention_max_distance", 128)},
            "residual": "pre", "norm": {"type": "rmsnorm", "eps": config.get("layer_norm_epsilon", 1e-6)},
            "attention": {"type": "mha", "bias": False, "scale": 1.0, "dropout": config.get("dropout_rate", 0.1)},
            "ffn": ffn, "share_embeddings": True, "tie_embeddings": tied,
            "head": {"type": "linear", "rescale": bool(tied and rescale)},
            **config.token_ids(vocab, pad_id="pad_token_id", eos_id="eos_token_id"),
            **config.token_ids(vocab, bos_id="decoder_start_token_id" if config.get("decoder_start_token_id")
                               is not None else "pad_token_id"),
        }
        if config.get("d_kv", d_model // n_heads) * n_heads != d_model:
            model["head_dim"] = config.get("d_kv")
        if n_decoder != n_layers:
            model["decoder"] = {"n_layers": n_decoder}
        return model

    def config(self, model: ModelSpec) -> dict[str, Any]:
        ffn, positional = model.ffn, model.positional.params
        gated = ffn.type != "mlp"
        activation = gate_activation(ffn) if gated else ffn.params.activation
        if gated:
            projection = "gated-gelu" if activation == "gelu_tanh" else f"gated-{HF_ACTIVATIONS[activation]}"
        else:
            projection = HF_ACTIVATIONS[activation]
        return {
            "model_type": "t5", "architectures": ["T5ForConditionalGeneration"], "is_encoder_decoder": True,
            "vocab_size": model.vocab_size, "n_positions": model.max_len, "d_model": model.d_model,
            "d_kv": model.head_dim_value(), "num_heads": model.n_heads, "d_ff": ffn_hidden(model, ffn),
            "num_layers": model.n_layers_of("encoder"), "num_decoder_layers": model.n_layers_of("decoder"),
            "feed_forward_proj": projection, "dropout_rate": model.dropout,
            "relative_attention_num_buckets": positional.num_buckets,
            "relative_attention_max_distance": positional.max_distance,
            "layer_norm_epsilon": model.norm.params.eps, "tie_word_embeddings": model.tie_embeddings,
            "scale_decoder_outputs": model.head.params.rescale,
            "pad_token_id": model.pad_id, "eos_token_id": model.eos_id, "decoder_start_token_id": model.bos_id,
        }

    def generation(self, model: ModelSpec) -> dict[str, Any]:
        out = {"decoder_start_token_id": model.bos_id, "eos_token_id": model.eos_id, "pad_token_id": model.pad_id}
        return {k: v for k, v in out.items() if v is not None}

    def _ffn(self, model: ModelSpec, ours: str, theirs: str) -> list[Rule]:
        hidden = ffn_hidden(model, model.ffn)
        if model.ffn.type == "mlp":
            rules = linear(f"{ours}.up", f"{theirs}.wi", bias=False)
        else:
            rules = [fused(f"{ours}.gate_up.weight", [f"{theirs}.wi_0.weight", f"{theirs}.wi_1.weight"], [hidden, hidden])]
        return rules + linear(f"{ours}.down", f"{theirs}.wo", bias=False)

    def rules(self, model: ModelSpec) -> list[Rule]:
        size = model.n_heads * model.head_dim_value()
        rules = [same("src_embed.weight", "shared.weight")]
        for side in ("encoder", "decoder"):
            rules.append(same(f"{side}.positional.weight",
                              f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"))
            for i in range(model.n_layers_of(side)):
                ours, theirs = f"{side}.layers.{i}", f"{side}.block.{i}.layer"
                a = f"{theirs}.0.SelfAttention"
                rules += self_attention(f"{ours}.self_attn", f"{a}.q", f"{a}.k", f"{a}.v", f"{a}.o", size, size, False)
                rules.append(same(f"{ours}.self_res.norm.weight", f"{theirs}.0.layer_norm.weight"))
                ffn_at = 1
                if side == "decoder":
                    c = f"{theirs}.1.EncDecAttention"
                    rules += cross_attention(f"{ours}.cross_attn", f"{c}.q", f"{c}.k", f"{c}.v", f"{c}.o", size, False)
                    rules.append(same(f"{ours}.cross_res.norm.weight", f"{theirs}.1.layer_norm.weight"))
                    ffn_at = 2
                rules += self._ffn(model, f"{ours}.ffn", f"{theirs}.{ffn_at}.DenseReluDense")
                rules.append(same(f"{ours}.ffn_res.norm.weight", f"{theirs}.{ffn_at}.layer_norm.weight"))
            rules.append(same(f"{side}.final_norm.weight", f"{side}.final_layer_norm.weight"))
        if not model.tie_embeddings:
            rules.append(same("head.weight", "lm_head.weight"))
        return rules


FAMILY = T5()
