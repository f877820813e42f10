"""Padded batches of (source, target) pairs for an encoder-decoder."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..tokenizer import ByteTokenizer
from .errors import DataError
from .mlm import IGNORE
from .packed_pairs import PackedPairs
from .pairs import Pairs

Batch = dict[str, torch.Tensor]


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), value, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out)  # [n, width]


class PairTensors:
    """Sources, decoder inputs (bos + target) and labels (target + eos), padded once."""

    def __init__(self, pairs: Pairs, tok: ByteTokenizer, max_len: int, source: str, split: str):
        src = [tok.encode(s) for s, _ in pairs]
        tgt = [tok.encode(t) for _, t in pairs]
        for i, (s, t) in enumerate(zip(src, tgt)):
            if len(s) > max_len or len(t) + 1 > max_len:
                raise DataError(
                    f"{source}: {split} pair {i} ({pairs[i][0][:30]!r}) needs {max(len(s), len(t) + 1)} positions "
                    f"(target + bos/eos); model.max_len is {max_len}"
                )
            if not s:
                raise DataError(f"{source}: {split} pair {i} has an empty source")
        self.src = _pad(src, tok.pad_id)  # [n, s]
        self.tgt_in = _pad([[tok.bos_id] + t for t in tgt], tok.pad_id)  # [n, t]
        self.labels = _pad([t + [tok.eos_id] for t in tgt], IGNORE)  # [n, t]
        self.src_len = torch.tensor([len(s) for s in src])
        self.tgt_len = torch.tensor([len(t) + 1 for t in tgt])

    def __len__(self) -> int:
        return self.src.shape[0]

    def batch(self, index: torch.Tensor) -> Batch:
        """Rows ``index``, trimmed to their longest source and target."""
        s, t = int(self.src_len[index].max()), int(self.tgt_len[index].max())
        return {"src_ids": self.src[index, :s], "tgt_ids": self.tgt_in[index, :t], "labels": self.labels[index, :t]}


class PairTask:
    """``seq2seq``: random training pairs; the validation pairs in order.

    ``packing`` (``train.packing``): each training row packs several pairs (``packed_pairs.py``);
    validation stays one pair per row, so its loss and exact match mean what they do unpacked."""

    task = "seq2seq"

    def __init__(self, train: Pairs, val: Pairs, tok: ByteTokenizer, max_len: int, *, seed: int, source: str,
                 packing: bool = False):
        self.train_pairs, self.val_pairs, self.source = train, val, source
        self.train = PairTensors(train, tok, max_len, source, "training")
        self.val = PairTensors(val, tok, max_len, source, "validation")
        self.generator = torch.Generator().manual_seed(seed)
        self.packed = PackedPairs(self.train, max_len, tok.pad_id) if packing else None

    def train_batch(self, batch_size: int) -> Batch:
        if self.packed is not None:
            return self.packed.batch(self.packed.rows(batch_size, self.generator))
        index = torch.randint(0, len(self.train), (batch_size,), generator=self.generator)
        return self.train.batch(index)

    def eval_batches(self, batch_size: int, max_batches: int) -> Iterator[Batch]:
        n = min(len(self.val), batch_size * max_batches)
        for start in range(0, n, batch_size):
            yield self.val.batch(torch.arange(start, min(start + batch_size, n)))
