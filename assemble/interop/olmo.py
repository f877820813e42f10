"""OLMo (``OlmoForCausalLM``): LLaMA with LayerNorms that have no learned weights (eps 1e-5)."""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import Config
from .llama import LLaMA
from .rules import Rule

OLMO_EPS = 1e-5  # fixed in transformers' OlmoLayerNorm


class OLMo(LLaMA):
    """Hugging Face OLMo (the first version; OLMo 2 is another model type)."""

    name = "olmo"
    model_types = ("olmo",)
    blocks = LLaMA.blocks | {"norm": ("layernorm",)}

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        if config.get("clip_qkv") is not None:
            raise config.unsupported("clip_qkv", config.get("clip_qkv"), "null (no clipping of q, k, v)")
        model = super().spec(config, names)
        model["norm"] = {"type": "layernorm", "eps": OLMO_EPS, "weight": False, "bias": False}
        model["ffn"]["bias"] = False  # OLMo's MLP has no biases
        return model

    def config(self, model: ModelSpec) -> dict[str, Any]:
        out = super().config(model)
        for key in ("sliding_window", "mlp_bias", "rms_norm_eps"):
            out.pop(key, None)
        return out | {"model_type": "olmo", "architectures": ["OlmoForCausalLM"], "clip_qkv": None}

    def rules(self, model: ModelSpec) -> list[Rule]:
        return [r for r in super().rules(model) if not r.ours.endswith("norm.weight")]


FAMILY = OLMo()
