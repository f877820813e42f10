"""Phi-3 (``Phi3ForCausalLM``): the LLaMA architecture with fused ``qkv_proj`` [q | k | v] and
``gate_up_proj`` [gate | up] weights, no biases, an optional sliding window.

A Phi-3 spec is also a LLaMA (Mistral) spec: export picks ``llama`` unless ``family="phi3"`` is named.
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import Config
from .llama import LLaMA
from .rules import Rule, same


class Phi3(LLaMA):
    """Hugging Face Phi-3 (dense; Phi-3.5-MoE and Phi-4-multimodal are other model types)."""

    name = "phi3"
    model_types = ("phi3",)

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        model = super().spec(config, names)
        model["attention"]["bias"] = False  # Phi-3 has no biases whatever the config says
        model["ffn"]["bias"] = False
        if config.get("sliding_window"):
            model["attention"]["window"] = config.get("sliding_window")
        model["dropout"] = config.get("resid_pdrop", 0.0)
        return model

    def config(self, model: ModelSpec) -> dict[str, Any]:
        out = super().config(model)
        for key in ("attention_bias", "mlp_bias"):
            out.pop(key, None)
        return out | {"model_type": "phi3", "architectures": ["Phi3ForCausalLM"],
                      "sliding_window": model.attention.params.window, "resid_pdrop": model.dropout,
                      "embd_pdrop": model.dropout}

    def rules(self, model: ModelSpec) -> list[Rule]:
        rules = [r for r in super().rules(model) if not r.ours.endswith((".qkv.weight", ".gate_up.weight"))]
        for i in range(model.n_layers_of("decoder")):
            ours, theirs = f"stack.layers.{i}", f"model.layers.{i}"
            rules += [same(f"{ours}.self_attn.qkv.weight", f"{theirs}.self_attn.qkv_proj.weight"),
                      same(f"{ours}.ffn.gate_up.weight", f"{theirs}.mlp.gate_up_proj.weight")]
        return rules


FAMILY = Phi3()
