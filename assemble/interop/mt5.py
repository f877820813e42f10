"""mT5 (``MT5ForConditionalGeneration``): T5 v1.1 (gated-GELU, no biases, relative position bias)
whose head never rescales the decoder output by d_model^-0.5.

transformers' MT5Config always says ``tie_word_embeddings: true``, but a file that holds its own
``lm_head.weight`` (the released mT5 checkpoints) keeps it untied; import decides the tie from the file.
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import Config
from .t5 import T5


class MT5(T5):
    """Hugging Face mT5: a T5 spec with ``head: {type: linear, rescale: false}``."""

    name = "mt5"
    model_types = ("mt5",)

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        model = super().spec(config, names)
        model["head"] = {"type": "linear", "rescale": False}  # MT5 has no rescale, whatever the config says
        return model

    def config(self, model: ModelSpec) -> dict[str, Any]:
        out = super().config(model)
        out.pop("scale_decoder_outputs")
        return out | {"model_type": "mt5", "architectures": ["MT5ForConditionalGeneration"]}


FAMILY = MT5()
