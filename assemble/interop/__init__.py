"""Hugging Face interop: ``import_hf`` / ``export_hf`` for the GPT-2, BERT, LLaMA (and Mistral),
T5, Marian, Qwen2, Qwen3, Gemma, OLMo, Phi-3, Starcoder2, GPT-BigCode, BLOOM, DistilBERT, mT5, OPT,
GPT-Neo, RoBERTa, XLM-R, BART, mBART, Pegasus, CamemBERT, Data2Vec-Text, PLBART, MVP, Blenderbot, BioGPT, CTRL and
GPT (OpenAI) families.
Reading and writing needs json and safetensors only, never transformers.
"""

from .convert import FAMILIES, FamilyError, export_hf, find_family, import_hf
from .files import InteropError

__all__ = ["FAMILIES", "FamilyError", "InteropError", "export_hf", "find_family", "import_hf"]
