"""Adapters: small trainable modules added beside a frozen linear layer (kind ``adapter``).

An adapter is built from the layer it adapts and its params; ``delta(x)`` is added to the layer's
output, and ``merge_into(linear)`` folds it into the layer's weight (the output is then the same
without the adapter). ``stackform.assemble.train.lora`` attaches them to the layers ``train.lora``
names.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from stackform.registry import BlockParams, add_kind, register
from stackform.registry.core import KINDS

if "adapter" not in KINDS:
    add_kind("adapter")


@register("adapter", "lora")
class LoRA(nn.Module):
    """Low-rank adaptation (Hu et al. 2021): y = W x + (alpha / rank) B A x; B starts at zero, so the
    adapted layer starts as the layer itself."""

    class Params(BlockParams):
        rank: int = 8
        alpha: float = 16.0
        dropout: float = 0.0

    def __init__(self, linear: nn.Linear, params: Params):
        super().__init__()
        weight = linear.weight
        self.a = nn.Parameter(torch.empty(params.rank, linear.in_features, dtype=weight.dtype, device=weight.device))
        self.b = nn.Parameter(torch.zeros(linear.out_features, params.rank, dtype=weight.dtype, device=weight.device))
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))  # as nn.Linear initializes, and as PEFT does
        self.scaling = params.alpha / params.rank
        self.dropout = nn.Dropout(params.dropout)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """What the adapter adds to the layer's output for input ``x`` [..., in]: [..., out]."""
        return nn.functional.linear(nn.functional.linear(self.dropout(x), self.a), self.b) * self.scaling

    @torch.no_grad()
    def merge_into(self, linear: nn.Linear) -> None:
        """Add scaling * B A to ``linear.weight`` (after which this adapter must be removed)."""
        linear.weight += (self.b.float() @ self.a.float() * self.scaling).to(linear.weight.dtype)  # [out, in]
