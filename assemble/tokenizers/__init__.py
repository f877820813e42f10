"""Tokenizers: bytes (``stackform.assemble.tokenizer``), a byte-level BPE trained on the training split,
or a Hugging Face ``tokenizer.json``; the run folder and the checkpoint carry the tokenizer.

The ``tokenizers`` package is an optional extra (``pip install 'stackform[tokenizers]'``): byte
models need nothing more; a missing package is one line naming that command.
"""

from __future__ import annotations

from ..tokenizer import ByteTokenizer
from .hf import TextTokenizer, TokenizerError, hf_tokenizers
from .resolve import (TOKENIZER_FILE, TOKENIZER_KEY, attach, resolve_paths, save_tokenizer, spec_ids, tokenizer_for,
                      tokenizer_meta, tokenizer_of)

__all__ = ["ByteTokenizer", "TOKENIZER_FILE", "TOKENIZER_KEY", "TextTokenizer", "TokenizerError", "attach",
           "hf_tokenizers", "resolve_paths", "save_tokenizer", "spec_ids", "tokenizer_for", "tokenizer_meta",
           "tokenizer_of"]
