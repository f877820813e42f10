"""Data2Vec-Text (``Data2VecTextForMaskedLM``): RoBERTa's architecture under ``data2vec_text.`` instead of
``roberta.`` (the MLM head is ``lm_head`` as RoBERTa's). Export picks ``roberta`` for such a spec unless
``--family data2vec_text`` is named."""

from __future__ import annotations

from .roberta import RoBERTa


class Data2VecText(RoBERTa):
    """Hugging Face Data2Vec-Text."""

    name = "data2vec_text"
    model_types = ("data2vec-text",)
    architecture = "Data2VecTextForMaskedLM"
    prefix = "data2vec_text."


FAMILY = Data2VecText()
