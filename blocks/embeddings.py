"""Token embeddings: lookup, optional sqrt(d_model) scale, positional encoding, dropout."""

from __future__ import annotations

import math

import torch
from torch import nn

from .positional import Positional


class TokenEmbedding(nn.Module):
    """ids [b, t] -> vectors [b, t, d]: E[ids] * (sqrt(d) if scaled), plus positions, then dropout."""

    def __init__(self, vocab_size: int, d_model: int, dropout: float = 0.0, scale: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model))
        nn.init.normal_(self.weight, std=0.02)
        self.scale = math.sqrt(d_model) if scale else 1.0
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor, positional: Positional, positions: torch.Tensor) -> torch.Tensor:
        x = nn.functional.embedding(ids, self.weight)  # [b, t, d]
        if self.scale != 1.0:
            x = x * self.scale
        return self.dropout(positional.embed(x, positions))
