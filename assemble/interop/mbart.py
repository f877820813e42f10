"""mBART (``MBartForConditionalGeneration``): BART with pre-norm layers and a final LayerNorm per side
(``model.{side}.layer_norm``); the released sizes scale their embeddings (``scale_embedding: true``).
"""

from __future__ import annotations

from .bart import BART


class MBART(BART):
    """Hugging Face mBART; without ``decoder_start_token_id`` generation starts from ``bos_token_id``, as
    transformers' ``generate`` does (translation sets the target language's id there)."""

    name = "mbart"
    model_types = ("mbart",)
    architecture = "MBartForConditionalGeneration"
    residual = "pre"


FAMILY = MBART()
