"""Positional encodings. Each offers up to three hooks, which the model and attention call:

- ``embed(x, positions)``: add to the token embeddings (sinusoidal, learned);
- ``rotate(q, k, state)``: rotate queries and keys (rope);
- ``score_bias(state)``: a [heads, q, k] bias added to attention scores (alibi).

``prepare(q_pos, k_pos)`` runs once per forward and returns what the other hooks share.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field
from torch import nn

from stackform.registry import BlockParams, Dims, register


class Positional(nn.Module):
    """Base class: every hook does nothing."""

    rotates = False  # rotate() is not the identity
    biases = False  # score_bias() returns a tensor

    def embed(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return x

    def prepare(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> Any:
        return None

    def rotate(self, q: torch.Tensor, k: torch.Tensor, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return q, k

    def score_bias(self, state: Any) -> torch.Tensor | None:
        return None


@register("positional", "none")
class NoPositional(Positional):
    """No positional information (NoPE); causal masking alone orders the tokens."""

    def __init__(self, dims: Dims, params: BlockParams):
        super().__init__()


def sinusoid_table(max_len: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """The paper's table: PE[pos, 2i] = sin(pos / base^(2i/d)), PE[pos, 2i+1] = cos(...)."""
    position = torch.arange(max_len, dtype=torch.float64)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(base) / dim))
    table = torch.zeros(max_len, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)[:, : dim // 2]
    return table.float()


@register("positional", "sinusoidal")
class Sinusoidal(Positional):
    """Fixed sin/cos table added to the embeddings (Vaswani et al. 2017, section 3.5)."""

    class Params(BlockParams):
        base: float = Field(10000.0, gt=1)

    def __init__(self, dims: Dims, params: Params):
        super().__init__()
        self.register_buffer("table", sinusoid_table(dims.max_len, dims.d_model, params.base), persistent=False)

    def embed(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return x + self.table[positions].to(x.dtype)


@register("positional", "learned")
class Learned(Positional):
    """A learned vector per position, added to the embeddings (GPT-2, BERT)."""

    def __init__(self, dims: Dims, params: BlockParams):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dims.max_len, dims.d_model))
        nn.init.normal_(self.weight, std=0.02)

    def embed(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return x + self.weight[positions]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


@register("positional", "rope")
class Rotary(Positional):
    """Rotary position embedding (Su et al. 2021): rotates q and k by position-dependent angles.

    Uses the half-split layout (GPT-NeoX, LLaMA in Hugging Face).
    """

    rotates = True

    class Params(BlockParams):
        theta: float = Field(10000.0, gt=1)

        def check(self, dims: Dims) -> str | None:
            if dims.head_dim % 2:
                return f"rope needs an even head_dim, got {dims.head_dim} (d_model {dims.d_model} / n_heads {dims.n_heads})"
            return None

    def __init__(self, dims: Dims, params: Params):
        super().__init__()
        self.head_dim = dims.head_dim
        inv_freq = self.inverse_frequencies(params, dims)
        angles = torch.outer(torch.arange(dims.max_len, dtype=torch.float32), inv_freq)  # [max_len, hd/2]
        angles = torch.cat((angles, angles), dim=-1)  # [max_len, hd]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def inverse_frequencies(self, params: Params, dims: Dims) -> torch.Tensor:
        """theta^(-2i/hd) for i < hd/2; subclasses rescale these (rope scaling)."""
        return 1.0 / params.theta ** (torch.arange(0, dims.head_dim, 2, dtype=torch.float32) / dims.head_dim)

    def prepare(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> Any:
        return self.cos[q_pos], self.sin[q_pos]  # [t, hd] each

    def rotate(self, q: torch.Tensor, k: torch.Tensor, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = state
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin  # [b, h, t, hd]


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Press et al. 2022: geometric slopes 2^(-8/n), ..., also for head counts that are not powers of 2."""
    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_heads).is_integer():
        return torch.tensor(power_of_two(n_heads))
    closest = 2 ** math.floor(math.log2(n_heads))
    extra = power_of_two(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(power_of_two(closest) + extra)


@register("positional", "alibi")
class ALiBi(Positional):
    """Attention with linear biases: score -= slope_h * |i - j| (Press et al. 2022)."""

    biases = True

    def __init__(self, dims: Dims, params: BlockParams):
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(dims.n_heads), persistent=False)

    def prepare(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> Any:
        return q_pos, k_pos

    def score_bias(self, state: Any) -> torch.Tensor:
        q_pos, k_pos = state
        distance = (q_pos[:, None] - k_pos[None, :]).abs().float()  # [q, k]
        return -self.slopes[:, None, None] * distance  # [h, q, k]
