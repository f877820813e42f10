"""Qwen2 (``Qwen2ForCausalLM``): LLaMA with biases on q / k / v but none on o_proj (``out_bias: false``)."""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import Config, full_attention_only
from .llama import LLaMA


class Qwen2(LLaMA):
    """Hugging Face Qwen2: gqa with q / k / v biases and an out projection without, no MLP biases,
    every layer full attention (``use_sliding_window: false``)."""

    name = "qwen2"
    model_types = ("qwen2",)

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        full_attention_only(config)
        model = super().spec(config, names)
        model["attention"] |= {"bias": True, "out_bias": False}  # fixed in Qwen2Attention, no config key
        model["attention"].pop("window", None)
        model["ffn"]["bias"] = False  # Qwen2's MLP has no biases
        return model

    def config(self, model: ModelSpec) -> dict[str, Any]:
        out = super().config(model)
        for key in ("sliding_window", "attention_bias", "mlp_bias"):
            out.pop(key, None)
        return out | {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "use_sliding_window": False,
                      "layer_types": ["full_attention"] * model.n_layers_of("decoder")}


FAMILY = Qwen2()
