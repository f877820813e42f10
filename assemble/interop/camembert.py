"""CamemBERT (``CamembertForMaskedLM``): RoBERTa's architecture and tensor names (``roberta.``, ``lm_head``)
under another ``model_type``. Export picks ``roberta`` for such a spec unless ``--family camembert`` is named."""

from __future__ import annotations

from .roberta import RoBERTa


class CamemBERT(RoBERTa):
    """Hugging Face CamemBERT."""

    name = "camembert"
    model_types = ("camembert",)
    architecture = "CamembertForMaskedLM"


FAMILY = CamemBERT()
