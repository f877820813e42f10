"""CTRL (``CTRLLMHeadModel``): a pre-norm decoder with [sin | cos] sinusoidal positions (Marian's table,
``layout: halves``), scaled embeddings, biases on every projection, a ReLU MLP and a tied head with its own bias.

The layers' LayerNorms have eps 1e-6 fixed in transformers, the final one ``layer_norm_epsilon``: a config whose
``layer_norm_epsilon`` is not 1e-6 is refused (one eps per spec). transformers computes the sinusoids in float32,
stackform in float64 then float32: equal within rounding at the positions the tests use (at position 50,000 a
float32 angle is off by about 3e-3 there).
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import Config, Family, ffn_hidden
from .rules import Rule, linear, norm, same, self_attention

EPS = 1e-6  # the layers' LayerNorm eps in CTRL's EncoderLayer


class CTRL(Family):
    """Hugging Face CTRL (token types, which CTRL reads from the token table, are not imported)."""

    name = "ctrl"
    model_types = ("ctrl",)
    prefix = "transformer."
    kind = "decoder"
    blocks = {"positional": ("sinusoidal",), "norm": ("layernorm",), "ffn": ("mlp",), "head": ("linear",)}

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        if config.get("layer_norm_epsilon", EPS) != EPS:
            raise config.unsupported("layer_norm_epsilon", config.get("layer_norm_epsilon"),
                                     "1e-06 (the layers' fixed eps; stackform has one per spec)")
        vocab = config.need("vocab_size")
        return {
            "kind": "decoder", "vocab_size": vocab, "max_len": config.get("n_positions", 256),
            "d_model": config.need("n_embd"), "n_heads": config.need("n_head"), "n_layers": config.need("n_layer"),
            "dropout": config.get("resid_pdrop", 0.1), "positional": {"type": "sinusoidal", "layout": "halves"},
            "residual": "pre", "norm": {"type": "layernorm", "eps": EPS}, "attention": {"type": "mha"},
            "ffn": {"type": "mlp", "activation": "relu", "hidden": config.need("dff")},
            "scale_embeddings": True, "tie_embeddings": config.get("tie_word_embeddings", True),
            "head": {"type": "linear", "bias": True},
            **config.token_ids(vocab, bos_id="bos_token_id", eos_id="eos_token_id", pad_id="pad_token_id"),
        }

    def config(self, model: ModelSpec) -> dict[str, Any]:
        return {
            "model_type": "ctrl", "architectures": ["CTRLLMHeadModel"],
            "vocab_size": model.vocab_size, "n_positions": model.max_len, "n_embd": model.d_model,
            "n_head": model.n_heads, "n_layer": model.n_layers_of("decoder"), "dff": ffn_hidden(model, model.ffn),
            "resid_pdrop": model.dropout, "embd_pdrop": model.dropout, "layer_norm_epsilon": model.norm.params.eps,
            "tie_word_embeddings": model.tie_embeddings,
            "bos_token_id": model.bos_id, "eos_token_id": model.eos_id, "pad_token_id": model.pad_id,
        }

    def rules(self, model: ModelSpec) -> list[Rule]:
        size, t = model.d_model, "transformer"
        rules = [same("embed.weight", f"{t}.w.weight")]
        for i in range(model.n_layers_of("decoder")):
            ours, theirs = f"stack.layers.{i}", f"{t}.h.{i}"
            a = f"{theirs}.multi_head_attention"
            rules += self_attention(f"{ours}.self_attn", f"{a}.Wq", f"{a}.Wk", f"{a}.Wv", f"{a}.dense", size, size,
                                    bias=True)
            rules += norm(f"{ours}.self_res.norm", f"{theirs}.layernorm1")
            rules += linear(f"{ours}.ffn.up", f"{theirs}.ffn.0", True) + linear(f"{ours}.ffn.down", f"{theirs}.ffn.2", True)
            rules += norm(f"{ours}.ffn_res.norm", f"{theirs}.layernorm2")
        rules += norm("stack.final_norm", f"{t}.layernorm")
        rules.append(same("head.bias", "lm_head.bias"))
        if not model.tie_embeddings:
            rules.append(same("head.weight", "lm_head.weight"))
        return rules


FAMILY = CTRL()
