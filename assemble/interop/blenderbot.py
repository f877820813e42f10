"""Blenderbot (``BlenderbotForConditionalGeneration``): a pre-norm encoder-decoder with a final LayerNorm per
side, learned positions read from row 0 (no offset), no embedding norm, optionally scaled embeddings, shared and
tied tables and a logits bias (BART's names otherwise). Generation settings of the config
(``encoder_no_repeat_ngram_size``, beams) are not part of the model and are not imported.
"""

from __future__ import annotations

from .bart import BART


class Blenderbot(BART):
    """Hugging Face Blenderbot (not BlenderbotSmall, whose decoder norms its embeddings before adding positions)."""

    name = "blenderbot"
    model_types = ("blenderbot",)
    architecture = "BlenderbotForConditionalGeneration"
    residual = "pre"
    offset = 0
    embedding_norm = False


FAMILY = Blenderbot()
