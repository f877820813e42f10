"""Output heads: hidden states -> logits over the vocabulary, tied to the embedding or not.

Heads are the registered kind ``head``; the model's head receives ``tied``, the token
embedding's weight, when the spec ties them.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from stackform.registry import BlockParams, Dims, register

from .ffn import ACTIVATIONS, Activation
from .protocol import Cost, CostContext, linear_cost, params_label
from .softcap import softcap


class LMHead(nn.Module):
    """logits = h W^T (+ b). With ``tied`` the weight is the token embedding's, stored once.

    ``logit_softcap`` (Gemma 2): logits = cap * tanh(logits / cap). A head that changes its logits after
    the projection says so with ``transforms_logits``, and a fused loss (which projects ``features``
    with ``weight`` itself) then computes the loss from ``forward`` instead."""

    logit_softcap: float | None = None

    @property
    def transforms_logits(self) -> bool:
        return self.logit_softcap is not None

    def __init__(self, d_model: int, vocab_size: int, tied: nn.Parameter | None = None, bias: bool = False):
        super().__init__()
        self.weight = tied if tied is not None else nn.Parameter(torch.empty(vocab_size, d_model))
        if tied is None:
            nn.init.normal_(self.weight, std=0.02)
        self.bias = nn.Parameter(torch.zeros(vocab_size)) if bias else None
        self.tied = tied is not None

    def features(self, h: torch.Tensor) -> torch.Tensor:
        """What the vocabulary projection sees (a fused loss projects these itself)."""
        return h

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        logits = nn.functional.linear(self.features(h), self.weight, self.bias)  # [b, t, vocab]
        return softcap(logits, self.logit_softcap) if self.logit_softcap is not None else logits

    def describe(self) -> str:
        return params_label(getattr(self, "block_name", "lm_head"), getattr(self, "block_params", None)) + \
            (" (tied)" if self.tied else "")

    def cost(self, ctx: CostContext) -> Cost:
        """The vocabulary projection (2 x vocab x d_model) and whatever transform comes first."""
        out = linear_cost(self)
        out.flops += 2 * self.weight.numel()
        return out


@register("head", "linear")
class LinearHead(LMHead):
    """A linear map to the vocabulary (the default); optional bias (Marian) and d_model^-0.5 input scale (T5)."""

    class Params(BlockParams):
        bias: bool = Field(False, description="a learned bias per vocabulary entry")
        rescale: bool = Field(False, description="multiply hidden states by d_model^-0.5 first (T5, tied)")
        softcap: float | None = Field(None, gt=0, description="logits become softcap * tanh(logits / softcap) "
                                                              "(Gemma 2: 30)")

    def __init__(self, dims: Dims, params: Params, tied: nn.Parameter | None = None):
        super().__init__(dims.d_model, dims.vocab_size, tied, params.bias)
        self.input_scale = dims.d_model ** -0.5 if params.rescale else 1.0
        self.logit_softcap = params.softcap

    def features(self, h: torch.Tensor) -> torch.Tensor:
        return h * self.input_scale if self.input_scale != 1.0 else h


@register("head", "mlm")
class MLMHead(LMHead):
    """BERT's MLM head: dense + activation + LayerNorm, then the vocabulary projection with a bias."""

    class Params(BlockParams):
        activation: Activation = Field("gelu", description="activation after the dense transform")
        eps: float = Field(1e-12, gt=0, description="LayerNorm epsilon of the transform")
        bias: bool = Field(True, description="a learned bias per vocabulary entry")

    def __init__(self, dims: Dims, params: Params, tied: nn.Parameter | None = None):
        super().__init__(dims.d_model, dims.vocab_size, tied, params.bias)
        self.transform = nn.Linear(dims.d_model, dims.d_model)
        self.act = ACTIVATIONS[params.activation]
        self.norm = nn.LayerNorm(dims.d_model, eps=params.eps)

    def features(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.transform(h)))
