"""Auxiliary losses from blocks (``losses()`` of the block protocol, ``blocks/protocol.py``): a
mixture of experts' load-balancing loss, a router z-loss. Each micro-batch adds the sum of what
the blocks report (already weighted by them) over ``grad_accum`` to the loss it backpropagates;
the logged ``loss`` stays the task's, and each auxiliary loss is logged under its own name
(averaged over the log window) in metrics.jsonl and on the progress line."""

from __future__ import annotations

import torch
from torch import nn

from stackform.blocks import protocol

RESERVED = ("step", "split", "loss", "lr", "tokens_per_s", "elapsed_s", "grad_norm", "skipped")


class AuxLosses:
    """The auxiliary losses of one model's blocks during training."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.window: dict[str, float] = {}
        self.names: tuple[str, ...] = ()

    def term(self, micro_batches: int) -> torch.Tensor | None:
        """What this micro-batch adds to its loss: the blocks' losses of its forward / ``micro_batches``
        (None when no block reports one)."""
        found = protocol.model_losses(self.model)
        if not found:
            return None
        for name, value in found.items():
            key = name if name not in RESERVED else f"aux_{name}"
            self.window[key] = self.window.get(key, 0.0) + float(value.detach()) / micro_batches
        self.names = tuple(self.window)
        return sum(found.values()) / micro_batches

    def fields(self, steps: int) -> dict[str, float]:
        """The window's mean of each auxiliary loss per step, then a fresh window."""
        out = {name: total / max(steps, 1) for name, total in self.window.items()}
        self.window = {}
        return out
