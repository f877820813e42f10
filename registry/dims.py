"""The model dimensions every block receives (plain data, no torch)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Dims:
    """Sizes shared by the blocks of one stack.

    ``head_dim`` is ``d_model // n_heads`` unless the spec sets it. ``causal`` is
    true in decoder self-attention, false in encoders and cross-attention.

    Where the block sits (set by the builder; the defaults are for blocks built alone):
    ``layer`` is the index of its layer in its stack (0 for stack-wide blocks: positional,
    masks, final norm, head); ``role`` is what it does there: ``self_attention``,
    ``cross_attention``, ``ffn``, ``norm``, ``layer``, ``positional``, ``mask``, ``head`` or
    ``embedding``; ``side`` is its stack: ``encoder`` or ``decoder`` (a decoder-only model's
    stack is the ``decoder``, an encoder-only model's the ``encoder``).
    """

    d_model: int
    n_heads: int
    head_dim: int
    max_len: int
    n_layers: int
    vocab_size: int
    dropout: float = 0.0
    causal: bool = False
    layer: int = 0
    role: str = ""
    side: str = ""

    def with_(self, **changes) -> "Dims":
        """A copy with some fields changed."""
        return replace(self, **changes)
