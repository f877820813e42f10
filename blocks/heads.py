"""Output heads: hidden states -> logits over the vocabulary, tied to the embedding or not."""

from __future__ import annotations

import torch
from torch import nn


class LMHead(nn.Module):
    """logits = h W^T (+ b). With ``tied`` the weight is the token embedding's, stored once."""

    def __init__(self, d_model: int, vocab_size: int, tied: nn.Parameter | None = None, bias: bool = False):
        super().__init__()
        self.weight = tied if tied is not None else nn.Parameter(torch.empty(vocab_size, d_model))
        if tied is None:
            nn.init.normal_(self.weight, std=0.02)
        self.bias = nn.Parameter(torch.zeros(vocab_size)) if bias else None
        self.tied = tied is not None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(h, self.weight, self.bias)  # [b, t, vocab]
