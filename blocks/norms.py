"""Normalization blocks: LayerNorm and RMSNorm over the model dimension."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from stackform.registry import BlockParams, Dims, register


@register("norm", "layernorm")
class LayerNorm(nn.LayerNorm):
    """LayerNorm (Ba et al. 2016): (x - mean) / std * weight + bias."""

    class Params(BlockParams):
        eps: float = Field(1e-5, gt=0)
        bias: bool = True
        weight: bool = Field(True, description="a learned scale; false: no learned parameters at all (OLMo)")

        def check(self, dims: Dims) -> str | None:
            if not self.weight and self.bias:
                return "weight: false needs bias: false (a norm without learned weights has no bias either)"
            return None

    def __init__(self, dims: Dims, params: Params, size: int | None = None):
        super().__init__(size or dims.d_model, eps=params.eps, elementwise_affine=params.weight,
                         bias=params.bias and params.weight)


@register("norm", "rmsnorm")
class RMSNorm(nn.RMSNorm):
    """RMSNorm (Zhang & Sennrich 2019): x / rms(x) * weight, no mean, no bias.

    ``unit_offset``: the stored weight w scales by (1 + w), as Gemma stores it (w starts at zero)."""

    class Params(BlockParams):
        eps: float = Field(1e-6, gt=0)
        unit_offset: bool = Field(False, description="scale by 1 + weight, the weight starting at 0 (Gemma)")

    def __init__(self, dims: Dims, params: Params, size: int | None = None):
        super().__init__(size or dims.d_model, eps=params.eps)
        self.unit_offset = params.unit_offset
        if self.unit_offset:
            nn.init.zeros_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unit_offset:
            return F.rms_norm(x, self.normalized_shape, 1.0 + self.weight, self.eps)
        return super().forward(x)
