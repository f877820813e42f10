"""A corpus for a vocabulary tokenizer (BPE, a tokenizer.json): split into train and validation as
text first, then tokenized, so the validation text is the same bytes for every tokenizer.

The byte stream (each document followed by one end mark) is cut into the blocks the byte split
uses (``data/tokens.py``: ``block_size``, ``is_val_block``); a cut moves forward to the next UTF-8
character start. Runs of blocks of one split are encoded as one text (all cores, ``encode_batch``);
each document's end becomes ``eos`` in the split its end mark falls in. User files are tokenized
once into the token cache (keyed by the files' contents, the split and the tokenizer's SHA-256).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from ..data.errors import DataError
from ..data.text import read_utf8_chunks
from ..data.token_cache import CACHE_FORMAT, _open, cache_root, file_digest
from ..data.tokens import TokenSplit, block_size, is_val_block, token_dtype

Piece = tuple[bool, int, "str | None"]  # (validation?, document index, text; None = the document's end)


def _char_start(doc: bytes, at: int) -> int:
    while at < len(doc) and 0x80 <= doc[at] < 0xC0:  # a UTF-8 continuation byte
        at += 1
    return at


def text_pieces(documents: list[bytes], fraction: float) -> list[Piece]:
    """The documents as (split, document, text) pieces in order, runs of one split merged."""
    block = block_size(sum(len(d) + 1 for d in documents))
    pieces: list[Piece] = []
    position = 0
    for index, doc in enumerate(documents):
        start = 0
        while start < len(doc):
            number = position // block
            end = _char_start(doc, min(len(doc), start + (number + 1) * block - position))
            val = is_val_block(number, fraction)
            text = doc[start:end].decode("utf-8", errors="replace")
            if pieces and pieces[-1][:2] == (val, index) and pieces[-1][2] is not None:
                pieces[-1] = (val, index, pieces[-1][2] + text)
            else:
                pieces.append((val, index, text))
            position += end - start
            start = end
        pieces.append((is_val_block(position // block, fraction), index, None))
        position += 1
    return pieces


def training_texts(pieces: list[Piece]) -> Iterable[str]:
    """The texts of the training split (what a BPE tokenizer learns from)."""
    return (text for val, _, text in pieces if not val and text)


def tokenize_pieces(pieces: list[Piece], tok, eos_id: int, source: str, top_id: int) -> TokenSplit:
    """The train and validation token streams of ``pieces`` (each document ends with ``eos_id``)."""
    dtype = token_dtype(max(eos_id, top_id))
    texts = [text for _, _, text in pieces if text]
    encoded = iter(tok.encode_batch(texts))
    eos = np.array([eos_id], dtype=dtype)
    parts: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    for val, _, text in pieces:
        parts[val].append(np.asarray(next(encoded), dtype=dtype) if text else eos)
    join = lambda p: np.concatenate(p) if p else np.zeros(0, dtype)  # noqa: E731
    return TokenSplit(join(parts[0]), join(parts[1]), source)


def read_documents(files: list[Path]) -> list[bytes]:
    """Each file's bytes (checked to be UTF-8)."""
    return [b"".join(read_utf8_chunks(path)) for path in files]


def cached_text_split(files: list[Path], tok, eos_id: int, fraction: float, source: str, top_id: int
                      ) -> TokenSplit:
    """``files`` tokenized by ``tok`` once into the token cache; the memory-mapped entry."""
    dtype = token_dtype(max(eos_id, top_id))
    blob = json.dumps({"format": CACHE_FORMAT, "files": [file_digest(p).hex() for p in files], "eos": eos_id,
                       "val": fraction, "dtype": np.dtype(dtype).name, "tokenizer": tok.sha256}, sort_keys=True)
    tokens = cache_root() / "tokens"
    folder = tokens / ("t" + hashlib.sha256(blob.encode()).hexdigest()[:23])
    if not os.path.lexists(folder):
        split = tokenize_pieces(text_pieces(read_documents(files), fraction), tok, eos_id, source, top_id)
        _store(tokens, folder, split, eos_id, files)
    return _open(folder, dtype, eos_id, source, max_id=top_id)


def _store(tokens: Path, folder: Path, split: TokenSplit, eos_id: int, files: list[Path]) -> None:
    try:
        tokens.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=tokens))
    except OSError as exc:
        raise DataError(f"{tokens}: cannot write the token cache ({exc.strerror}); set STACKFORM_CACHE") from None
    try:
        try:
            (tmp / "train.bin").write_bytes(split.train.tobytes())
            (tmp / "val.bin").write_bytes(split.val.tobytes())
            meta = {"format": CACHE_FORMAT, "dtype": split.train.dtype.name, "train": int(split.train.size),
                    "val": int(split.val.size), "eos": eos_id, "files": [str(p) for p in files]}
            (tmp / "meta.json").write_text(json.dumps(meta))
            os.replace(tmp, folder)
        except OSError as exc:
            if not os.path.isdir(folder):  # not another process finishing first
                raise DataError(f"{tokens}: cannot write the token cache ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
