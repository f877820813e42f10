"""Packed seq2seq batches (``train.packing``): several (source, target) pairs per row.

A row holds whole pairs, drawn at random, until the next one would overflow ``width`` (the model's
max_len) on either side; that pair then starts the next row (the one drawn after a batch is full is
dropped). Sources are concatenated on the encoder side, decoder inputs (bos + target) and labels
(target + eos) on the decoder side, each with document ids: the index of the pair in its row. Every
target starts with its own bos, so no label is predicted from another pair, and with the ids the
model keeps each side's attention within a pair and a target's cross-attention on its own source.

A row's pads continue its last pair's document id and are hidden as keys by ``src_mask`` /
``tgt_mask`` (True = a real token): no query ever sees a pad, and no query is left with nothing
to see (a pad query sees its row's last pair), whatever masks the model's spec has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .mlm import IGNORE

if TYPE_CHECKING:
    from .seq2seq import PairTensors

Batch = dict[str, torch.Tensor]


class PackedPairs:
    """Packs rows of ``pairs`` (padded PairTensors) into batches of width at most ``width``."""

    def __init__(self, pairs: PairTensors, width: int, pad_id: int):
        self.pairs, self.width, self.pad_id = pairs, width, pad_id

    def rows(self, batch_size: int, generator: torch.Generator) -> list[list[int]]:
        """``batch_size`` rows of pair indices drawn at random (uses ``generator``)."""
        src_len, tgt_len = self.pairs.src_len.tolist(), self.pairs.tgt_len.tolist()
        rows: list[list[int]] = []
        row: list[int] = []
        s = t = 0
        while True:
            for i in torch.randint(0, len(self.pairs), (batch_size,), generator=generator).tolist():
                if row and (s + src_len[i] > self.width or t + tgt_len[i] > self.width):
                    rows.append(row)
                    if len(rows) == batch_size:
                        return rows
                    row, s, t = [], 0, 0
                row.append(i)
                s, t = s + src_len[i], t + tgt_len[i]

    def batch(self, rows: list[list[int]]) -> Batch:
        """The packed batch of ``rows``, trimmed to its longest row on each side."""
        p, b = self.pairs, len(rows)
        src_len, tgt_len = p.src_len.tolist(), p.tgt_len.tolist()
        s = max(sum(src_len[i] for i in row) for row in rows)
        t = max(sum(tgt_len[i] for i in row) for row in rows)
        out = {
            "src_ids": torch.full((b, s), self.pad_id), "tgt_ids": torch.full((b, t), self.pad_id),
            "labels": torch.full((b, t), IGNORE), "src_document_ids": torch.zeros(b, s, dtype=torch.long),
            "tgt_document_ids": torch.zeros(b, t, dtype=torch.long), "src_mask": torch.zeros(b, s, dtype=torch.bool),
            "tgt_mask": torch.zeros(b, t, dtype=torch.bool),
        }
        for r, row in enumerate(rows):
            s0 = t0 = 0
            for d, i in enumerate(row):
                n, m = src_len[i], tgt_len[i]
                out["src_ids"][r, s0:s0 + n] = p.src[i, :n]
                out["tgt_ids"][r, t0:t0 + m] = p.tgt_in[i, :m]
                out["labels"][r, t0:t0 + m] = p.labels[i, :m]
                out["src_document_ids"][r, s0:] = d  # pads after the last pair continue its id
                out["tgt_document_ids"][r, t0:] = d
                s0, t0 = s0 + n, t0 + m
            out["src_mask"][r, :s0] = True
            out["tgt_mask"][r, :t0] = True
        return out
