"""Token embeddings: lookup, optional sqrt(d_model) scale, positional encoding, optional
token-type (segment) embeddings and embedding norm (BERT), dropout.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field, PositiveInt
from torch import nn

from stackform.registry import BlockParams, Dims, register

from .positional import Positional
from .protocol import Cost, CostContext, cost, describe, linear_cost


@register("token_type", "learned")
class TokenTypes(nn.Module):
    """A learned vector per token type (segment A/B in BERT), added to the embeddings; type 0 by default."""

    class Params(BlockParams):
        n_types: PositiveInt = Field(2, description="how many token types (BERT: 2)")

    def __init__(self, dims: Dims, params: Params):
        super().__init__()
        self.n_types = params.n_types
        self.weight = nn.Parameter(torch.empty(params.n_types, dims.d_model))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        if token_type_ids is None:
            return x + self.weight[0]
        return x + nn.functional.embedding(token_type_ids, self.weight)  # [b, t, d]


class TokenEmbedding(nn.Module):
    """ids [b, t] -> vectors [b, t, d]: E[ids] * (sqrt(d) if scaled), plus token types (when
    the spec has them), plus positions, then the embedding norm (when set), then dropout.
    """

    no_weight_decay = True  # its own parameter is the token table

    def __init__(self, vocab_size: int, d_model: int, dropout: float = 0.0, scale: bool = False,
                 token_types: nn.Module | None = None, norm: nn.Module | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model))
        nn.init.normal_(self.weight, std=0.02)
        self.scale = math.sqrt(d_model) if scale else 1.0
        self.token_types = token_types
        self.norm = norm
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor, positional: Positional, positions: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        x = nn.functional.embedding(ids, self.weight)  # [b, t, d]
        if self.scale != 1.0:
            x = x * self.scale
        if self.token_types is not None:
            x = self.token_types(x, token_type_ids)
        x = positional.embed(x, positions)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x) if self.dropout.p else x

    def describe(self) -> str:
        parts = [f"token embedding {self.weight.shape[0]} x {self.weight.shape[1]}"]
        if self.scale != 1.0:
            parts.append("x sqrt(d_model)")
        if self.token_types is not None:
            parts.append("+ token types")
        if self.norm is not None:
            parts.append(f"then {describe(self.norm)}")
        return " ".join(parts)

    def cost(self, ctx: CostContext) -> Cost:
        """A lookup (no FLOPs counted); the embedding norm keeps what a norm keeps."""
        out = linear_cost(self)
        if self.norm is not None:
            out.activations = cost(self.norm, ctx).activations
        return out
