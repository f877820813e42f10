"""Qwen3 (``Qwen3ForCausalLM``): LLaMA with RMS-normalized queries and keys per head (``qk_norm``)."""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import Config, full_attention_only
from .llama import LLaMA
from .rules import Rule, same

QK_NORM_EPS = 1e-6  # the attention block's q/k norms use this eps


class Qwen3(LLaMA):
    """Hugging Face Qwen3 (dense): gqa with ``qk_norm``, no MLP biases, every layer full attention."""

    name = "qwen3"
    model_types = ("qwen3",)

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        full_attention_only(config)
        eps = config.get("rms_norm_eps", 1e-6)
        if eps != QK_NORM_EPS:
            raise config.unsupported("rms_norm_eps", eps, f"{QK_NORM_EPS} (the eps of stackform's q/k norms)")
        model = super().spec(config, names)
        model["attention"]["qk_norm"] = True
        model["ffn"]["bias"] = False  # Qwen3's MLP has no biases whatever the config says
        return model

    def config(self, model: ModelSpec) -> dict[str, Any]:
        out = super().config(model)
        for key in ("sliding_window", "mlp_bias"):
            out.pop(key, None)
        return out | {"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "use_sliding_window": False,
                      "layer_types": ["full_attention"] * model.n_layers_of("decoder")}

    def rules(self, model: ModelSpec) -> list[Rule]:
        rules = super().rules(model)
        for i in range(model.n_layers_of("decoder")):
            for name in ("q_norm", "k_norm"):
                rules.append(same(f"stack.layers.{i}.self_attn.{name}.weight",
                                  f"model.layers.{i}.self_attn.{name}.weight"))
        return rules


FAMILY = Qwen3()
