"""The model dimensions every block receives (plain data, no torch)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Dims:
    """Sizes shared by the blocks of one stack.

    ``head_dim`` is ``d_model // n_heads`` unless the spec sets it. ``causal`` is
    true in decoder self-attention, false in encoders and cross-attention.
    """

    d_model: int
    n_heads: int
    head_dim: int
    max_len: int
    n_layers: int
    vocab_size: int
    dropout: float = 0.0
    causal: bool = False

    def with_(self, **changes) -> "Dims":
        """A copy with some fields changed."""
        return replace(self, **changes)
