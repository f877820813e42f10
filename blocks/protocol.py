"""The block protocol's data: what ``cost(ctx)`` receives and returns (minimal; the full module comes
with the block protocol of issue 15, part 1)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CostContext:
    """Where a block's cost is asked: sequence and key lengths, model sizes, its role and layer."""

    seq_len: int
    kv_len: int
    d_model: int
    n_heads: int
    role: str = "self"
    layer: int = 0


@dataclass(frozen=True)
class Cost:
    """Per-token forward cost: FLOPs, activation elements, parameters (all, and those a token uses)."""

    flops: float
    activations: float
    params: int
    active_params: int
