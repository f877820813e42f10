"""Normalization blocks: LayerNorm and RMSNorm over the model dimension."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from stackform.registry import BlockParams, Dims, register


@register("norm", "layernorm")
class LayerNorm(nn.LayerNorm):
    """LayerNorm (Ba et al. 2016): (x - mean) / std * weight + bias."""

    class Params(BlockParams):
        eps: float = Field(1e-5, gt=0)
        bias: bool = True

    def __init__(self, dims: Dims, params: Params, size: int | None = None):
        super().__init__(size or dims.d_model, eps=params.eps, bias=params.bias)


@register("norm", "rmsnorm")
class RMSNorm(nn.RMSNorm):
    """RMSNorm (Zhang & Sennrich 2019): x / rms(x) * weight, no mean, no bias."""

    class Params(BlockParams):
        eps: float = Field(1e-6, gt=0)

    def __init__(self, dims: Dims, params: Params, size: int | None = None):
        super().__init__(size or dims.d_model, eps=params.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)
