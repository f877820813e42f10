"""Token streams split into train and validation, in memory or in memory-mapped files.

A corpus becomes one stream of byte tokens, each document followed by ``eos``. The
stream is cut into blocks (4096 tokens, smaller for tiny corpora); an evenly spread
``val_fraction`` of the blocks is the validation split, the rest is the training split.
Tokens are uint16 while every id fits (uint32 above 65535); user text is tokenized once
into a cache (``token_cache.py``) and memory-mapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from .errors import DataError

TOKEN_DTYPES = (np.uint16, np.uint32)


@dataclass
class TokenSplit:
    """The training and validation token streams of a corpus (uint16 or uint32 arrays or memmaps)."""

    train: np.ndarray
    val: np.ndarray
    source: str


def block_size(total_tokens: int) -> int:
    """Split granularity: 4096 tokens, or about 1/50 of a small corpus (at least 16)."""
    return max(16, min(4096, total_tokens // 50))


def is_val_block(index: int, fraction: float) -> bool:
    """Block ``index`` belongs to validation: exactly ``fraction`` of the blocks, evenly spread."""
    return int((index + 1) * fraction) > int(index * fraction)


class SplitWriter:
    """Routes a stream of token arrays, block by block, to a train sink and a val sink."""

    def __init__(self, block: int, fraction: float, train: Callable[[np.ndarray], object],
                 val: Callable[[np.ndarray], object]):
        self.block, self.fraction, self.sinks = block, fraction, (train, val)
        self.position = 0

    def write(self, tokens: np.ndarray) -> None:
        while tokens.size:
            take = self.block - self.position % self.block
            piece, tokens = tokens[:take], tokens[take:]
            self.sinks[is_val_block(self.position // self.block, self.fraction)](piece)
            self.position += piece.size


def token_dtype(eos_id: int) -> type:
    """The smallest unsigned dtype that holds the byte ids and ``eos_id``: uint16, or uint32 above 65535."""
    for dtype in TOKEN_DTYPES:
        if 0 <= eos_id <= np.iinfo(dtype).max:
            return dtype
    raise DataError(f"model.eos_id: {eos_id} does not fit a token of the data (uint32 at most)")


def bytes_to_tokens(data: bytes, dtype: type) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).astype(dtype)


def split_documents(documents: Iterable[bytes], eos_id: int, val_fraction: float, source: str) -> TokenSplit:
    """In-memory split of byte documents (small corpora such as pydoc)."""
    docs, dtype = list(documents), token_dtype(eos_id)
    total = sum(len(d) + 1 for d in docs)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    writer = SplitWriter(block_size(total), val_fraction, train.append, val.append)
    eos = np.array([eos_id], dtype=dtype)
    for doc in docs:
        writer.write(bytes_to_tokens(doc, dtype))
        writer.write(eos)
    join = lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype)  # noqa: E731
    return TokenSplit(join(train), join(val), source)
