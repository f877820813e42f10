"""PLBART (``PLBartForConditionalGeneration``): BART's architecture and tensor names under another
``model_type`` (released with scaled embeddings). Export picks ``bart`` for such a spec unless
``--family plbart`` is named."""

from __future__ import annotations

from .bart import BART


class PLBART(BART):
    """Hugging Face PLBART."""

    name = "plbart"
    model_types = ("plbart",)
    architecture = "PLBartForConditionalGeneration"


FAMILY = PLBART()
