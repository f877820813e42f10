"""Residual placements: where the norm goes around each sublayer."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from stackform.registry import BlockParams, Dims, register

Sublayer = Callable[[torch.Tensor], torch.Tensor]
NormFactory = Callable[[], nn.Module]


@register("residual", "pre")
class PreNorm(nn.Module):
    """x + dropout(f(norm(x))); the stack ends with a final norm (GPT-2, LLaMA)."""

    final_norm = True
    Params = BlockParams

    def __init__(self, dims: Dims, params: BlockParams, norm: NormFactory):
        super().__init__()
        self.norm = norm()
        self.dropout = nn.Dropout(dims.dropout)

    def forward(self, x: torch.Tensor, sublayer: Sublayer) -> torch.Tensor:
        return x + self.dropout(sublayer(self.norm(x)))


@register("residual", "post")
class PostNorm(nn.Module):
    """norm(x + dropout(f(x))): the original Transformer's Add & Norm."""

    final_norm = False
    Params = BlockParams

    def __init__(self, dims: Dims, params: BlockParams, norm: NormFactory):
        super().__init__()
        self.norm = norm()
        self.dropout = nn.Dropout(dims.dropout)

    def forward(self, x: torch.Tensor, sublayer: Sublayer) -> torch.Tensor:
        return self.norm(x + self.dropout(sublayer(x)))


@register("residual", "sandwich")
class SandwichNorm(nn.Module):
    """x + dropout(norm_out(f(norm_in(x)))): norms on both sides of the sublayer (CogView, Gemma 2)."""

    final_norm = True
    Params = BlockParams

    def __init__(self, dims: Dims, params: BlockParams, norm: NormFactory):
        super().__init__()
        self.norm = norm()
        self.norm_out = norm()
        self.dropout = nn.Dropout(dims.dropout)

    def forward(self, x: torch.Tensor, sublayer: Sublayer) -> torch.Tensor:
        return x + self.dropout(self.norm_out(sublayer(self.norm(x))))
