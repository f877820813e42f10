"""Cross-entropy over the LM head in row chunks, so full logits are never held for a whole batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..data import IGNORE

CHUNK_ROWS = 8192  # rows of hidden states turned into logits at a time


def _ce_sum(head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    logits = head(hidden)  # [rows, vocab]
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return F.cross_entropy(logits, targets, reduction="sum", label_smoothing=label_smoothing)


def chunked_cross_entropy(
    head: nn.Module,
    hidden: torch.Tensor,
    labels: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    select: bool = True,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[torch.Tensor, int]:
    """(sum of token losses, number of targets) for hidden [b, t, d] and labels [b, t].

    With ``select`` only positions whose label is not IGNORE are projected (MLM: ~15%).
    Above ``chunk_rows`` rows, each chunk's logits are recomputed in backward instead of
    kept (activation checkpointing), so memory holds one chunk of logits at a time.
    """
    h = hidden.reshape(-1, hidden.shape[-1])  # [b*t, d]
    y = labels.reshape(-1)  # [b*t]
    if select:
        keep = (y != IGNORE).nonzero().squeeze(1)
        h, y = h.index_select(0, keep), y.index_select(0, keep)
    n = y.shape[0]
    if n <= chunk_rows:
        return _ce_sum(head, h, y, label_smoothing), n
    recompute = torch.is_grad_enabled()
    total = 0
    for start in range(0, n, chunk_rows):
        h_chunk, y_chunk = h[start:start + chunk_rows], y[start:start + chunk_rows]
        if recompute:
            total = total + checkpoint(_ce_sum, head, h_chunk, y_chunk, label_smoothing, use_reentrant=False)
        else:
            total = total + _ce_sum(head, h_chunk, y_chunk, label_smoothing)
    return total, n
