"""T5's bucketed relative position bias (Raffel et al. 2020, section 2.1).

One learned scalar per (bucket, head) is added to the attention scores; the bucket of a
query/key pair depends on their distance: exact for small distances, logarithmic up to
``max_distance``, one bucket beyond. Encoders tell keys before and after apart (half the
buckets each); causal stacks only look back. The stack's one positional module is shared
by all its layers, as in T5 (where layer 0 computes the bias and every layer reuses it).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field, PositiveInt
from torch import nn

from stackform.registry import BlockParams, Dims, register

from .positional import Positional, ScoreMod


def relative_bucket(relative: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bucket index of ``relative = key_pos - query_pos`` (the Mesh TensorFlow / Hugging Face T5 rule)."""
    buckets = torch.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative > 0).long() * num_buckets
        distance = relative.abs()
    else:
        distance = (-relative).clamp(min=0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


@register("positional", "relative_bias")
class RelativeBias(Positional):
    """T5 relative position bias: a learned per-head score bias for each bucket of key - query distance."""

    biases = True
    relative_scores = True

    class Params(BlockParams):
        num_buckets: PositiveInt = Field(32, description="buckets (half per direction when bidirectional)")
        max_distance: PositiveInt = Field(128, description="distances from here on share the last bucket")
        bidirectional: bool | None = Field(None, description="default: true in encoders, false in causal stacks")

        def check(self, dims: Dims) -> str | None:
            both_ways = self.bidirectional if self.bidirectional is not None else not dims.causal
            exact = (self.num_buckets // 2 if both_ways else self.num_buckets) // 2
            if exact < 1:
                return f"num_buckets ({self.num_buckets}) is too small: at least 2 per direction are needed"
            if self.max_distance <= exact:
                return f"max_distance ({self.max_distance}) must be above the exact buckets ({exact})"
            return None

    def __init__(self, dims: Dims, params: Params):
        super().__init__()
        self.num_buckets = params.num_buckets
        self.max_distance = params.max_distance
        self.bidirectional = params.bidirectional if params.bidirectional is not None else not dims.causal
        self.weight = nn.Parameter(torch.empty(params.num_buckets, dims.n_heads))  # [buckets, h]
        nn.init.normal_(self.weight, std=0.02)
        self.max_len = dims.max_len
        relative = torch.arange(-dims.max_len + 1, dims.max_len)  # every key - query distance
        buckets = relative_bucket(relative, self.bidirectional, self.num_buckets, self.max_distance)
        self.register_buffer("buckets", buckets, persistent=False)  # [2 * max_len - 1]
        # keys at least this far back share the last bucket of the past (beyond max_distance)
        # (on the CPU: the model may be built on the meta device)
        past = relative_bucket(-torch.arange(dims.max_len, device="cpu"), self.bidirectional, self.num_buckets,
                               self.max_distance).tolist()  # bucket of distance d = q - k, d = 0 .. max_len - 1
        self.far_bucket = past[-1]
        self.far_distance = next(d for d in range(len(past), 0, -1) if d == 1 or past[d - 2] != past[-1]) - 1

    def prepare(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> Any:
        return q_pos, k_pos

    def score_mod(self, state: Any) -> ScoreMod:
        q_pos, k_pos = state
        table = self.weight.t()[:, self.buckets]  # [h, 2 * max_len - 1]: the bias of every distance
        shift = self.max_len - 1

        def relative_bias(score, b, h, q_idx, kv_idx):
            return score + table[h, k_pos[kv_idx] - q_pos[q_idx] + shift].to(score.dtype)

        return relative_bias

    def far_bias(self, state: Any) -> tuple[int, torch.Tensor]:
        return self.far_distance, self.weight[self.far_bucket]  # [h]
