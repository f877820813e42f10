"""GPT-Neo (``GPTNeoForCausalLM``): GPT-2's shape with nn.Linear q / k / v (no biases) and an out projection
with a bias (``out_bias: true``), unscaled scores (``scale: 1.0``), and layers that alternate between global
and local attention (``attention_types``): a local layer is a per-layer override with ``window: window_size``."""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import HF_ACTIVATIONS, Config, Family, ffn_hidden
from .rules import Rule, linear, norm, same, self_attention

TYPES = ("global", "local")


def _layer_types(config: Config, n_layers: int) -> list[str]:
    """``attention_types`` ([[["global", "local"], 12]]) expanded to one type per layer, as transformers does."""
    spec = config.get("attention_types", [[["global", "local"], n_layers // 2]])
    try:
        types = [t for pattern, repeat in spec for _ in range(repeat) for t in pattern]
    except (TypeError, ValueError):
        raise config.unsupported("attention_types", spec, "a list of [[types...], repeat] pairs") from None
    other = sorted({str(t) for t in types if t not in TYPES})
    if other:
        raise config.unsupported("attention_types", other, "global, local")
    if len(types) != n_layers:
        raise config.error(f"attention_types {spec!r} give {len(types)} layers but num_layers is {n_layers}")
    return types


def _attention_types(types: list[str]) -> list[list[Any]]:
    """The shortest [[pattern, repeat]] of a list of layer types (a period that repeats, else runs)."""
    n = len(types)
    for period in range(1, n + 1):
        if n % period == 0 and types == types[:period] * (n // period):
            return [[types[:period], n // period]]
    return [[types, 1]]  # unreachable: the whole list is a period of itself


class GPTNeo(Family):
    """Hugging Face GPT-Neo."""

    name = "gpt_neo"
    model_types = ("gpt_neo",)
    prefix = "transformer."
    kind = "decoder"
    blocks = {"positional": ("learned",), "norm": ("layernorm",), "ffn": ("mlp",)}
    ignore = (r"\.attn\.attention\.(bias|masked_bias)$",)  # causal-mask buffers of old checkpoints

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        d_model, vocab, n_layers = config.need("hidden_size"), config.need("vocab_size"), config.need("num_layers")
        types = _layer_types(config, n_layers)
        attention = {"type": "mha", "bias": False, "out_bias": True, "scale": 1.0,
                     "dropout": config.get("attention_dropout", 0.0)}
        local = attention | {"window": config.get("window_size", 256)}
        groups: list[dict[str, Any]] = []
        for t in types:
            block = local if t == "local" else None
            if groups and groups[-1].get("attention") == block:
                groups[-1]["repeat"] += 1
            else:
                groups.append({"repeat": 1, **({"attention": block} if block else {})})
        model: dict[str, Any] = {
            "kind": "decoder", "vocab_size": vocab, "max_len": config.get("max_position_embeddings", 2048),
            "d_model": d_model, "n_heads": config.need("num_heads"), "n_layers": n_layers,
            "dropout": config.get("resid_dropout", 0.0), "positional": "learned", "residual": "pre",
            "norm": {"type": "layernorm", "eps": config.get("layer_norm_epsilon", 1e-5)},
            "attention": attention,
            "ffn": {"type": "mlp", "activation": config.activation("activation_function", "gelu_new"),
                    "hidden": config.get("intermediate_size") or 4 * d_model},
            "tie_embeddings": config.get("tie_word_embeddings", True),
            **config.token_ids(vocab, bos_id="bos_token_id", eos_id="eos_token_id", pad_id="pad_token_id"),
        }
        if "local" in types:
            model["layers"] = groups
        return model

    def config(self, model: ModelSpec) -> dict[str, Any]:
        attention, ffn = model.attention.params, model.ffn.params
        windows = [layer.attention.params.window for layer in model.plan("decoder").layers]
        sizes = sorted({w for w in windows if w is not None})
        if len(sizes) > 1:
            raise ValueError(f"GPT-Neo has one window_size for its local layers, not {sizes}")
        return {
            "model_type": "gpt_neo", "architectures": ["GPTNeoForCausalLM"],
            "vocab_size": model.vocab_size, "max_position_embeddings": model.max_len, "hidden_size": model.d_model,
            "num_heads": model.n_heads, "num_layers": len(windows), "intermediate_size": ffn_hidden(model, model.ffn),
            "attention_types": _attention_types(["global" if w is None else "local" for w in windows]),
            "window_size": sizes[0] if sizes else 256, "activation_function": HF_ACTIVATIONS[ffn.activation],
            "resid_dropout": model.dropout, "embed_dropout": model.dropout, "attention_dropout": attention.dropout,
            "layer_norm_epsilon": model.norm.params.eps, "tie_word_embeddings": model.tie_embeddings,
            "bos_token_id": model.bos_id, "eos_token_id": model.eos_id, "pad_token_id": model.pad_id,
        }

    def rules(self, model: ModelSpec) -> list[Rule]:
        size = model.d_model
        rules = [same("embed.weight", "transformer.wte.weight"), same("stack.positional.weight", "transformer.wpe.weight")]
        for i in range(model.n_layers_of("decoder")):
            ours, theirs = f"stack.layers.{i}", f"transformer.h.{i}"
            a = f"{theirs}.attn.attention"
            rules += self_attention(f"{ours}.self_attn", f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.out_proj",
                                    size, size, False, True)
            rules += norm(f"{ours}.self_res.norm", f"{theirs}.ln_1") + norm(f"{ours}.ffn_res.norm", f"{theirs}.ln_2")
            rules += linear(f"{ours}.ffn.up", f"{theirs}.mlp.c_fc", True)
            rules += linear(f"{ours}.ffn.down", f"{theirs}.mlp.c_proj", True)
        rules += norm("stack.final_norm", "transformer.ln_f")
        if not model.tie_embeddings:
            rules.append(same("head.weight", "lm_head.weight"))
        return rules


FAMILY = GPTNeo()
