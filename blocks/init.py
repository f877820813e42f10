"""Weight initialization schemes: ``normal`` (GPT-2) and ``xavier`` (the paper's)."""

from __future__ import annotations

import math

from torch import nn

from .embeddings import TokenEmbedding
from .heads import LMHead
from .positional import Learned


def init_weights(model: nn.Module, scheme: str, std: float = 0.02, n_layers: int = 1) -> None:
    """``normal``: N(0, std), residual output projections N(0, std / sqrt(2 * n_layers)), zero biases.
    ``xavier``: Xavier-uniform matrices, N(0, d^-0.5) embeddings, zero biases. Norms keep ones/zeros.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear):
            if scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                scale = math.sqrt(2 * n_layers) if getattr(module, "residual_out", False) else 1.0
                nn.init.normal_(module.weight, std=std / scale)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (TokenEmbedding, Learned)) or (isinstance(module, LMHead) and not module.tied):
            d = module.weight.shape[1]
            nn.init.normal_(module.weight, std=d ** -0.5 if scheme == "xavier" else std)
