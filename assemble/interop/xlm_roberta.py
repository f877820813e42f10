"""XLM-R (``XLMRobertaForMaskedLM``): RoBERTa's architecture and tensor names under another ``model_type``
(a larger vocabulary in the released sizes). Export picks ``roberta`` for such a spec unless
``--family xlm_roberta`` is named."""

from __future__ import annotations

from .roberta import RoBERTa


class XLMRoBERTa(RoBERTa):
    """Hugging Face XLM-R."""

    name = "xlm_roberta"
    model_types = ("xlm-roberta",)
    architecture = "XLMRobertaForMaskedLM"


FAMILY = XLMRoBERTa()
