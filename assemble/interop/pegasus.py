"""Pegasus (``PegasusForConditionalGeneration``): Marian's encoder-decoder ([sin | cos] sinusoidal positions,
shared embeddings, a logits bias) with pre-norm layers and a final LayerNorm per side
(``model.{side}.layer_norm``); the released sizes scale their embeddings and use ReLU.
"""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .marian import Marian


class Pegasus(Marian):
    """Hugging Face Pegasus; the decoder starts from ``decoder_start_token_id`` (the pad token, 0)."""

    name = "pegasus"
    model_types = ("pegasus",)
    architecture = "PegasusForConditionalGeneration"
    residual = "pre"

    def config(self, model: ModelSpec) -> dict[str, Any]:
        out = super().config(model)
        out.pop("decoder_vocab_size")  # Marian's key; Pegasus has one vocabulary
        return out


FAMILY = Pegasus()
