"""Byte-level BPE (GPT-2's scheme) trained on the training split of a spec's corpus, once: the
result is cached in ``$STACKFORM_CACHE/tokenizers/<key>.json``, the key a SHA-256 of the training
text, the settings and the ``tokenizers`` version. Special tokens come first, at fixed ids."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from ..checkpoint import atomic_write
from ..data.token_cache import cache_root
from .hf import TokenizerError, hf_tokenizers, read_tokenizer_text

SPECIALS = ("<pad>", "<bos>", "<eos>", "<mask>")  # ids 0, 1, 2, 3 of a trained BPE
SPECIAL_IDS = {"pad_id": 0, "bos_id": 1, "eos_id": 2, "mask_id": 3}
BPE_FORMAT = 1


def bpe_key(texts: list[str], vocab_size: int, min_frequency: int) -> str:
    hf = hf_tokenizers()
    h = hashlib.sha256(json.dumps({"format": BPE_FORMAT, "vocab": vocab_size, "min_frequency": min_frequency,
                                   "specials": SPECIALS, "tokenizers": hf.__version__}).encode())
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        h.update(f"{len(data)}|".encode())
        h.update(data)
    return h.hexdigest()[:24]


def train_bpe_json(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> str:
    """A byte-level BPE tokenizer.json trained on ``texts`` (at most ``vocab_size`` ids, specials first)."""
    hf = hf_tokenizers()
    tokenizer = hf.Tokenizer(hf.models.BPE())
    tokenizer.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = hf.decoders.ByteLevel()
    trainer = hf.trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                     special_tokens=list(SPECIALS), show_progress=False,
                                     initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer.to_str()


def cached_bpe_json(texts: list[str], vocab_size: int, min_frequency: int) -> str:
    """The tokenizer.json of ``texts`` and these settings: from the cache, else trained and cached."""
    if not any(texts):
        raise TokenizerError("train.tokenizer: bpe: the training split holds no text to learn from")
    path = cache_root() / "tokenizers" / f"{bpe_key(texts, vocab_size, min_frequency)}.json"
    if os.path.isfile(path):
        return read_tokenizer_text(path, "cached BPE tokenizer (delete it and it is trained again)")
    text = train_bpe_json(texts, vocab_size, min_frequency)
    try:
        atomic_write(Path(path), text.encode("utf-8"))
    except OSError:
        pass  # a read-only cache: train again next time
    return text
