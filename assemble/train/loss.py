"""The training loss: cross-entropy over the LM head, fused with the head's projection.

The model returns hidden states only; ``chunked_cross_entropy`` passes them through the
head's ``features`` and hands them with the head's weight to ``linear_cross_entropy``
(linear_ce.py), which never holds the logits of the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data import IGNORE
from .forward import Batch, hidden_states
from .linear_ce import linear_cross_entropy


def chunked_cross_entropy(
    head: nn.Module,
    hidden: torch.Tensor,
    labels: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    select: bool = True,
    chunk_rows: int | None = None,
) -> tuple[torch.Tensor, int]:
    """(sum of token losses, number of targets) for hidden [b, t, d] and labels [b, t].

    With ``select`` only positions whose label is not IGNORE are projected (MLM: ~15%);
    without it every position counts. ``chunk_rows`` caps the rows whose logits exist at once.
    """
    h = hidden.reshape(-1, hidden.shape[-1])  # [b*t, d]
    y = labels.reshape(-1)  # [b*t]
    if select:
        keep = (y != IGNORE).nonzero().squeeze(1)
        h, y = h.index_select(0, keep), y.index_select(0, keep)
    if getattr(head, "transforms_logits", False):  # logits change after the projection (a soft cap): not fused
        logits = head(h).float()  # [n, vocab]
        total = F.cross_entropy(logits, y, ignore_index=IGNORE, reduction="sum", label_smoothing=float(label_smoothing))
        return total, y.shape[0]
    total, _ = linear_cross_entropy(head.features(h), head.weight, head.bias, y, label_smoothing,
                                    chunk_rows=chunk_rows)
    return total, y.shape[0]


def loss_function(model: nn.Module, forward, spec, compile: bool, distributed: bool = False,
                  mode: str | None = None):
    """``batch -> (sum of token losses, number of targets)`` for training: the hidden states of
    ``forward`` (the model, or its DDP/FSDP wrapper) through the head fused with the loss.

    Compiled (``mode``: torch.compile's), the model is compiled and the fused loss runs eagerly
    after it, for every task. (Compiling the model and the fused loss as one graph gave the right
    loss but all-zero gradients on CUDA: docs/performance.md, the GPU round of 2026-12-04.)
    ``distributed`` is accepted for the callers and changes nothing here."""
    train = spec.train
    select = train.task != "causal_lm" or train.packing  # packing: no target across a document boundary

    def loss(batch: Batch, forward=forward) -> tuple[torch.Tensor, int]:
        return chunked_cross_entropy(model.head, hidden_states(forward, batch), batch["labels"],
                                     label_smoothing=train.label_smoothing, select=select)

    if not compile:
        return loss
    compiled = torch.compile(forward, mode=mode)
    return lambda batch: loss(batch, compiled)
