"""Gemma (``GemmaForCausalLM``): LLaMA with RMS norms that scale by 1 + w (``unit_offset``), embeddings
scaled by sqrt(d_model), a tanh-GELU gated FFN, tied embeddings.
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import Config, gated_ffn
from .llama import LLaMA


class Gemma(LLaMA):
    """Hugging Face Gemma (the first generation; Gemma 2 and 3 are other model types)."""

    name = "gemma"
    model_types = ("gemma",)

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        if config.get("use_bidirectional_attention", False):
            raise config.unsupported("use_bidirectional_attention", config.get("use_bidirectional_attention"),
                                     "false (a causal decoder)")
        model = super().spec(config, names)
        # transformers reads Gemma's legacy "gelu" as the tanh approximation, and so does import
        legacy = config.get("hidden_act") == "gelu"
        activation = "gelu_tanh" if legacy else config.activation("hidden_act", "gelu_pytorch_tanh")
        model["ffn"] = gated_ffn(activation, config.need("intermediate_size"), False)
        model["norm"]["unit_offset"] = True
        model["scale_embeddings"] = True
        model["tie_embeddings"] = config.get("tie_word_embeddings", True)
        return model

    def config(self, model: ModelSpec) -> dict[str, Any]:
        out = super().config(model)
        for key in ("sliding_window", "mlp_bias"):
            out.pop(key, None)
        return out | {"model_type": "gemma", "architectures": ["GemmaForCausalLM"]}


FAMILY = Gemma()
