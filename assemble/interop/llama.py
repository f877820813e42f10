"""LLaMA (``LlamaForCausalLM``) and Mistral-style configs: RMSNorm, rotary (with linear / llama3
scaling), SwiGLU, grouped-query attention, no biases, optional sliding window (Mistral).
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import HF_ACTIVATIONS, Config, Family, ffn_hidden, gate_activation, gated_ffn, kv_heads
from .rules import Rule, fused, linear, norm, same, self_attention


def rope_block(config: Config) -> dict[str, Any]:
    """The rope block of a config: ``rope_parameters`` (transformers 5) or ``rope_theta`` + ``rope_scaling``."""
    params = config.get("rope_parameters", {})
    if any(isinstance(v, dict) for v in params.values()):
        raise config.error("rope_parameters per layer type are not supported (one rope for every layer)")
    theta = params.get("rope_theta") or config.get("rope_theta", 10000.0)
    scaling = params if params.get("rope_type", "default") != "default" else config.get("rope_scaling", {})
    rope_type = scaling.get("rope_type") or scaling.get("type") or "default"
    partial = params.get("partial_rotary_factor") or config.get("partial_rotary_factor", 1.0)
    if partial != 1.0:
        raise config.unsupported("partial_rotary_factor", partial, "1.0")
    block: dict[str, Any] = {"type": "rope", "theta": float(theta)}
    if rope_type in ("linear", "llama3") and scaling.get("factor") is None:
        raise config.error(f"rope type {rope_type} needs a 'factor'")
    if rope_type == "linear":
        block["scaling"] = {"type": "linear", "factor": float(scaling["factor"])}
    elif rope_type == "llama3":
        block["scaling"] = {
            "type": "llama3", "factor": float(scaling["factor"]),
            "low_freq_factor": float(scaling.get("low_freq_factor", 1.0)),
            "high_freq_factor": float(scaling.get("high_freq_factor", 4.0)),
            "original_max_len": scaling.get("original_max_position_embeddings") or config.need("max_position_embeddings"),
        }
    elif rope_type != "default":
        raise config.unsupported("rope type", rope_type, "default, linear, llama3")
    return block


def rope_config(block: Any) -> dict[str, Any]:
    """config.json keys of a rope block, in both the transformers 5 and the older spelling."""
    params = block.params
    scaling: dict[str, Any] = {}
    if params.scaling is not None:
        s = params.scaling
        scaling = {"rope_type": s.type, "factor": s.factor}
        if s.type == "llama3":
            scaling |= {"low_freq_factor": s.low_freq_factor, "high_freq_factor": s.high_freq_factor,
                        "original_max_position_embeddings": s.original_max_len}
    return {"rope_theta": params.theta, "rope_scaling": scaling or None,
            "rope_parameters": {"rope_type": "default", "rope_theta": params.theta} | scaling}


class LLaMA(Family):
    """Hugging Face LLaMA; a Mistral config is the same model with a sliding window."""

    name = "llama"
    model_types = ("llama", "mistral")
    prefix = "model."
    kind = "decoder"
    blocks = {"positional": ("rope",), "norm": ("rmsnorm",), "ffn": ("swiglu", "geglu", "reglu")}
    ignore = (r"\.rotary_emb\.inv_freq$",)

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        d_model, n_heads, vocab = config.need("hidden_size"), config.need("num_attention_heads"), config.need("vocab_size")
        n_kv = config.get("num_key_value_heads", n_heads)
        attention: dict[str, Any] = {"type": "gqa", "n_kv_heads": n_kv} if n_kv != n_heads else {"type": "mha"}
        attention |= {"bias": config.get("attention_bias", False), "dropout": config.get("attention_dropout", 0.0)}
        if config.get("model_type") == "mistral" and config.get("sliding_window"):
            attention["window"] = config.get("sliding_window")
        model: dict[str, Any] = {
            "kind": "decoder", "vocab_size": vocab, "max_len": config.get("max_position_embeddings", 2048),
            "d_model": d_model, "n_heads": n_heads, "n_layers": config.need("num_hidden_layers"), "dropout": 0.0,
            "positional": rope_block(config), "residual": "pre",
            "norm": {"type": "rmsnorm", "eps": config.get("rms_norm_eps", 1e-6)},
            "attention": attention,
            "ffn": gated_ffn(config.activation("hidden_act", "silu"), config.need("intermediate_size"),
                             config.get("mlp_bias", False)),
            "tie_embeddings": config.get("tie_word_embeddings", False),
            **config.token_ids(vocab, bos_id="bos_token_id", eos_id="eos_token_id", pad_id="pad_token_id"),
        }
        head_dim = config.get("head_dim")
        if head_dim is not None and head_dim * n_heads != d_model:
            model["head_dim"] = head_dim
        return model

    def config(self, model: ModelSpec) -> dict[str, Any]:
        attention, ffn = model.attention.params, model.ffn.params
        window = attention.window
        out = {
            "model_type": "mistral" if window else "llama",
            "architectures": ["MistralForCausalLM" if window else "LlamaForCausalLM"],
            "vocab_size": model.vocab_size, "max_position_embeddings": model.max_len, "hidden_size": model.d_model,
            "num_attention_heads": model.n_heads, "num_key_value_heads": kv_heads(model),
            "head_dim": model.head_dim_value(), "num_hidden_layers": model.n_layers_of("decoder"),
            "intermediate_size": ffn_hidden(model, model.ffn), "hidden_act": HF_ACTIVATIONS[gate_activation(model.ffn)],
            "rms_norm_eps": model.norm.params.eps, "attention_bias": attention.bias, "mlp_bias": ffn.bias,
            "attention_dropout": attention.dropout, "tie_word_embeddings": model.tie_embeddings,
            "bos_token_id": model.bos_id, "eos_token_id": model.eos_id, "pad_token_id": model.pad_id,
            **rope_config(model.positional),
        }
        if window:
            out["sliding_window"] = window
        return out

    def rules(self, model: ModelSpec) -> list[Rule]:
        attention, ffn = model.attention.params, model.ffn.params
        hd = model.head_dim_value()
        q_size, kv_size = model.n_heads * hd, kv_heads(model) * hd
        hidden = ffn_hidden(model, model.ffn)
        rules = [same("embed.weight", "model.embed_tokens.weight")]
        for i in range(model.n_layers_of("decoder")):
            ours, theirs = f"stack.layers.{i}", f"model.layers.{i}"
            a, m = f"{theirs}.self_attn", f"{theirs}.mlp"
            rules += self_attention(f"{ours}.self_attn", f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.o_proj",
                                    q_size, kv_size, attention.bias, attention.out_bias)
            rules += norm(f"{ours}.self_res.norm", f"{theirs}.input_layernorm", bias=False)
            rules.append(fused(f"{ours}.ffn.gate_up.weight", [f"{m}.gate_proj.weight", f"{m}.up_proj.weight"],
                               [hidden, hidden]))
            if ffn.bias:
                rules.append(fused(f"{ours}.ffn.gate_up.bias", [f"{m}.gate_proj.bias", f"{m}.up_proj.bias"],
                                   [hidden, hidden]))
            rules += linear(f"{ours}.ffn.down", f"{m}.down_proj", ffn.bias)
            rules += norm(f"{ours}.ffn_res.norm", f"{theirs}.post_attention_layernorm", bias=False)
        rules.append(same("stack.final_norm.weight", "model.norm.weight"))
        if not model.tie_embeddings:
            rules.append(same("head.weight", "lm_head.weight"))
        return rules


FAMILY = LLaMA()
