"""Language-model batches from a token split: random windows to train, consecutive ones to evaluate."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .errors import DataError
from .mlm import IGNORE, mask_tokens
from .tokens import TokenSplit

Batch = dict[str, torch.Tensor]
EVAL_SEED = 1234  # the fixed masking of evaluation batches (the same every evaluation)


class TextTask:
    """``causal_lm``: inputs are a window, labels the window shifted by one.
    ``mlm``: inputs are a masked window, labels the original ids at the masked positions.

    ``eos_id`` (``train.packing``): every window packs the documents of the stream (each ends with
    eos) and carries ``document_ids`` [b, t]. causal_lm: an eos's label (the next document's first
    token) is IGNORE, so no loss crosses a boundary. mlm: the masking is unchanged (eos is never
    masked); the document ids keep the encoder's attention and positions within each document."""

    def __init__(self, split: TokenSplit, task: str, seq_len: int, *, seed: int, mask_id: int | None = None,
                 mlm_probability: float = 0.15, eos_id: int | None = None):
        self.split, self.task, self.seq_len = split, task, seq_len
        self.window = seq_len + 1 if task == "causal_lm" else seq_len
        self.mask_id, self.mlm_probability = mask_id, mlm_probability
        self.eos_id = eos_id  # packing: documents end at eos
        for name, part, fraction in (("training", split.train, "smaller"), ("validation", split.val, "larger")):
            if len(part) < self.window:
                n = len(part)
                raise DataError(
                    f"{split.source}: the {name} split has {n} token{'' if n == 1 else 's'}, fewer than one window "
                    f"of {self.window}; use more text, a {fraction} val_fraction or a smaller train.seq_len"
                )
        self.generator = torch.Generator().manual_seed(seed)

    def _windows(self, array: np.ndarray, starts: list[int]) -> torch.Tensor:
        rows = np.stack([array[s:s + self.window] for s in starts])  # [b, window]
        return torch.from_numpy(rows.astype(np.int64))

    def _batch(self, windows: torch.Tensor, generator: torch.Generator) -> Batch:
        if self.task == "causal_lm" and self.eos_id is not None:
            return packed_batch(windows, self.eos_id)
        if self.task == "causal_lm":
            return {"input_ids": windows[:, :-1], "labels": windows[:, 1:]}  # [b, t] each
        inputs, labels = mask_tokens(windows, mask_id=self.mask_id, generator=generator,
                                     probability=self.mlm_probability)
        if self.eos_id is not None:
            return {"input_ids": inputs, "labels": labels, "document_ids": document_ids(windows, self.eos_id)}
        return {"input_ids": inputs, "labels": labels}

    def train_batch(self, batch_size: int) -> Batch:
        """``batch_size`` windows at random offsets of the training split (uses ``self.generator``)."""
        high = len(self.split.train) - self.window + 1
        starts = torch.randint(0, high, (batch_size,), generator=self.generator).tolist()
        return self._batch(self._windows(self.split.train, starts), self.generator)

    def eval_batches(self, batch_size: int, max_batches: int) -> Iterator[Batch]:
        """Consecutive windows over the validation split (the same ones every time)."""
        stride = self.window - 1 if self.task == "causal_lm" else self.window
        starts = list(range(0, len(self.split.val) - self.window + 1, stride))[: batch_size * max_batches]
        generator = torch.Generator().manual_seed(EVAL_SEED)
        for i in range(0, len(starts), batch_size):
            yield self._batch(self._windows(self.split.val, starts[i:i + batch_size]), generator)


def packed_batch(windows: torch.Tensor, eos_id: int) -> Batch:
    """A causal_lm batch of packed documents from windows [b, t + 1] of an eos-separated stream:
    document ids count the eos tokens before each input; an eos predicts nothing (IGNORE)."""
    inputs, labels = windows[:, :-1], windows[:, 1:].clone()
    labels[inputs == eos_id] = IGNORE
    return {"input_ids": inputs, "labels": labels, "document_ids": document_ids(inputs, eos_id)}


def document_ids(ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """[b, t]: the number of eos tokens before each position (an eos belongs to the document it ends)."""
    ends = (ids == eos_id).long()  # [b, t]: the last token of a document
    return ends.cumsum(dim=1) - ends
