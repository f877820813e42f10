"""Residual placements: where the norm goes around each sublayer."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from stackform.registry import BlockParams, Dims, register

Sublayer = Callable[[torch.Tensor], torch.Tensor]
NormFactory = Callable[[], nn.Module]


class _Residual(nn.Module):
    """Shared part: residual dropout on the sublayer's output (skipped outright when p is 0).

    Declared for the rest of stackform: ``final_norm`` (a stack of these ends with a norm),
    ``norms_at`` (where its norms sit: "before" the sublayer, "after" it, "after_add" on the
    stream), ``container`` (its cost is its norms')."""

    container = True
    norms_at: tuple[str, ...] = ()

    def __init__(self, dims: Dims):
        super().__init__()
        self.p = dims.dropout

    def drop(self, y: torch.Tensor) -> torch.Tensor:
        return F.dropout(y, self.p, self.training) if self.p else y


@register("residual", "pre")
class PreNorm(_Residual):
    """x + dropout(f(norm(x))); the stack ends with a final norm (GPT-2, LLaMA)."""

    final_norm = True
    norms_at = ("before",)
    Params = BlockParams

    def __init__(self, dims: Dims, params: BlockParams, norm: NormFactory):
        super().__init__(dims)
        self.norm = norm()

    def forward(self, x: torch.Tensor, sublayer: Sublayer) -> torch.Tensor:
        return x + self.drop(sublayer(self.norm(x)))


@register("residual", "post")
class PostNorm(_Residual):
    """norm(x + dropout(f(x))): the original Transformer's Add & Norm."""

    final_norm = False
    norms_at = ("after_add",)
    Params = BlockParams

    def __init__(self, dims: Dims, params: BlockParams, norm: NormFactory):
        super().__init__(dims)
        self.norm = norm()

    def forward(self, x: torch.Tensor, sublayer: Sublayer) -> torch.Tensor:
        return self.norm(x + self.drop(sublayer(x)))


@register("residual", "sandwich")
class SandwichNorm(_Residual):
    """x + dropout(norm_out(f(norm_in(x)))): norms on both sides of the sublayer (CogView, Gemma 2)."""

    final_norm = True
    norms_at = ("before", "after")
    Params = BlockParams

    def __init__(self, dims: Dims, params: BlockParams, norm: NormFactory):
        super().__init__(dims)
        self.norm = norm()
        self.norm_out = norm()

    def forward(self, x: torch.Tensor, sublayer: Sublayer) -> torch.Tensor:
        return x + self.drop(self.norm_out(sublayer(self.norm(x))))


@register("residual", "reordered")
class ReorderedNorm(_Residual):
    """x + dropout(norm(f(x))): the norm on the sublayer's output instead of its input (OLMo 2)."""

    final_norm = True
    norms_at = ("after",)  # (declared for the block protocol's diagram: the norm follows the sublayer)
    Params = BlockParams

    def __init__(self, dims: Dims, params: BlockParams, norm: NormFactory):
        super().__init__(dims)
        self.norm = norm()

    def forward(self, x: torch.Tensor, sublayer: Sublayer) -> torch.Tensor:
        return x + self.drop(self.norm(sublayer(x)))
