"""GPT-2 (``GPT2LMHeadModel``): learned positions, pre-norm LayerNorm, fused-QKV Conv1D attention."""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import HF_ACTIVATIONS, Config, Family, ffn_hidden
from .rules import Rule, same, transposed


class GPT2(Family):
    """Hugging Face GPT-2: Conv1D weights are [in, out], so every matrix is transposed."""

    name = "gpt2"
    model_types = ("gpt2",)
    prefix = "transformer."
    kind = "decoder"
    blocks = {"positional": ("learned",), "norm": ("layernorm",), "ffn": ("mlp",)}
    ignore = (r"\.attn\.(bias|masked_bias)$",)  # causal-mask buffers of old checkpoints

    def spec(self, config: Config, names: set[str]) -> dict[str, Any]:
        if config.get("scale_attn_by_inverse_layer_idx", False):
            raise config.unsupported("scale_attn_by_inverse_layer_idx", True, "false")
        if config.get("add_cross_attention", False):
            raise config.unsupported("add_cross_attention", True, "false")
        d_model, vocab = config.need("n_embd"), config.need("vocab_size")
        attention: dict[str, Any] = {"type": "mha", "dropout": config.get("attn_pdrop", 0.1)}
        if not config.get("scale_attn_weights", True):
            attention["scale"] = 1.0
        return {
            "kind": "decoder", "vocab_size": vocab, "max_len": config.need("n_positions"), "d_model": d_model,
            "n_heads": config.need("n_head"), "n_layers": config.need("n_layer"),
            "dropout": config.get("resid_pdrop", 0.1),
            "positional": "learned", "residual": "pre",
            "norm": {"type": "layernorm", "eps": config.get("layer_norm_epsilon", 1e-5)},
            "attention": attention,
            "ffn": {"type": "mlp", "activation": config.activation("activation_function", "gelu_new"),
                    "hidden": config.get("n_inner") or 4 * d_model},
            "tie_embeddings": config.get("tie_word_embeddings", True),
            **config.token_ids(vocab, bos_id="bos_token_id", eos_id="eos_token_id", pad_id="pad_token_id"),
        }

    def config(self, model: ModelSpec) -> dict[str, Any]:
        attention, ffn = model.attention.params, model.ffn.params
        return {
            "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": model.vocab_size, "n_positions": model.max_len, "n_embd": model.d_model,
            "n_head": model.n_heads, "n_layer": model.n_layers_of("decoder"), "n_inner": ffn_hidden(model, model.ffn),
            "activation_function": HF_ACTIVATIONS[ffn.activation],
            "resid_pdrop": model.dropout, "embd_pdrop": model.dropout, "attn_pdrop": attention.dropout,
            "layer_norm_epsilon": model.norm.params.eps, "scale_attn_weights": attention.scale is None,
            "tie_word_embeddings": model.tie_embeddings,
            "bos_token_id": model.bos_id, "eos_token_id": model.eos_id, "pad_token_id": model.pad_id,
        }

    def rules(self, model: ModelSpec) -> list[Rule]:
        rules = [same("embed.weight", "transformer.wte.weight"), same("stack.positional.weight", "transformer.wpe.weight")]
        for i in range(model.n_layers_of("decoder")):
            ours, theirs = f"stack.layers.{i}", f"transformer.h.{i}"
            rules += [
                same(f"{ours}.self_res.norm.weight", f"{theirs}.ln_1.weight"),
                same(f"{ours}.self_res.norm.bias", f"{theirs}.ln_1.bias"),
                transposed(f"{ours}.self_attn.qkv.weight", f"{theirs}.attn.c_attn.weight"),  # q | k | v
                same(f"{ours}.self_attn.qkv.bias", f"{theirs}.attn.c_attn.bias"),
                transposed(f"{ours}.self_attn.out.weight", f"{theirs}.attn.c_proj.weight"),
                same(f"{ours}.self_attn.out.bias", f"{theirs}.attn.c_proj.bias"),
                same(f"{ours}.ffn_res.norm.weight", f"{theirs}.ln_2.weight"),
                same(f"{ours}.ffn_res.norm.bias", f"{theirs}.ln_2.bias"),
                transposed(f"{ours}.ffn.up.weight", f"{theirs}.mlp.c_fc.weight"),
                same(f"{ours}.ffn.up.bias", f"{theirs}.mlp.c_fc.bias"),
                transposed(f"{ours}.ffn.down.weight", f"{theirs}.mlp.c_proj.weight"),
                same(f"{ours}.ffn.down.bias", f"{theirs}.mlp.c_proj.bias"),
            ]
        rules += [same("stack.final_norm.weight", "transformer.ln_f.weight"),
                  same("stack.final_norm.bias", "transformer.ln_f.bias")]
        if not model.tie_embeddings:
            rules.append(same("head.weight", "lm_head.weight"))
        return rules


FAMILY = GPT2()
