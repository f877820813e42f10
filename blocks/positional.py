"""Positional encodings. Each offers up to three hooks, which the model and attention call:

- ``embed(x, positions)``: add to the token embeddings (sinusoidal, learned);
- ``rotate(q, k, state)``: rotate queries and keys (rope);
- ``score_mod(state)``: a FlexAttention ``score_mod`` (score, b, h, q_idx, kv_idx) -> score that
  biases attention scores (alibi, T5's relative bias); the kernels apply it per block or chunk;
- ``score_bias(state)``: the older dense form, a [heads, q, k] bias (plugins that predate score_mod).

A biasing positional may also declare two forms of its score_mod that let the kernels keep SDPA's
fast paths (both optional, both checked against ``score_mod`` by tests/blocks/test_score_forms.py):

- ``key_bias(state)``: where no key lies after its query, the bias is a per-key bias plus a term of
  the query alone, which softmax ignores (ALiBi: -s*(i - j) = s*j - s*i); it folds into q and k;
- ``far_bias(state)``: from some distance back on, the bias is one constant per head (T5's last
  bucket); those keys run on SDPA's causal kernel, only a band near the diagonal needs the bias.

``prepare(q_pos, k_pos)`` runs once per forward and returns what the other hooks share.

Packed sequences (``document_ids``) restart positions at each document: ``embed`` and ``prepare``
then get per-row positions [b, t] instead of [t]; a positional whose scores depend only on the
distance (``relative_scores``) keeps the row positions, since cross-document pairs are masked.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from stackform.registry import BlockParams, Dims, register


ScoreMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class Positional(nn.Module):
    """Base class: every hook does nothing."""

    rotates = False  # rotate() is not the identity
    adds_to_embeddings = False  # embed() adds to the token embeddings (sinusoidal, learned)
    no_weight_decay = True  # its own parameters are position tables (AdamW skips them)
    biases = False  # score_mod() (or the older score_bias()) modifies attention scores
    # score_mod's result depends on positions only through kv_pos - q_pos: a chunk's bias is a shifted
    # slice of one reference block (built once per forward), not computed anew per chunk
    relative_scores = False
    # Computed tables that stay float32 when the model moves to another float dtype (the block
    # casts them at use): a bf16 model runs the same, and .float() afterwards is exact again.
    float32_tables: tuple[str, ...] = ()

    def _apply(self, fn, recurse: bool = True):
        kept = {name: self._buffers[name] for name in self.float32_tables if self._buffers.get(name) is not None}
        out = super()._apply(fn, recurse)
        for name, table in kept.items():
            moved = self._buffers[name]
            if moved.dtype != table.dtype and moved.dtype != torch.float64:  # only the device follows
                self._buffers[name] = table.to(moved.device)
        return out

    def embed(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return x

    def prepare(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> Any:
        return None

    def rotate(self, q: torch.Tensor, k: torch.Tensor, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return q, k

    def score_mod(self, state: Any) -> ScoreMod | None:
        """``mod(score, b, h, q_idx, kv_idx) -> score`` (FlexAttention's score_mod; indices into q and k)."""
        return None

    def score_bias(self, state: Any) -> torch.Tensor | None:
        """A dense bias broadcastable to [b, h, q, k]; only read when ``score_mod`` returns None."""
        return None

    def key_bias(self, state: Any) -> torch.Tensor | None:
        """A bias per key, [h, k] (or [b, h, k] with per-row positions), such that wherever a key is
        not after its query (k_pos <= q_pos) score_mod adds key_bias[.., h, kv_idx] plus a term of the
        query alone; None when the bias has no such form."""
        return None

    def far_bias(self, state: Any) -> tuple[int, torch.Tensor] | None:
        """(distance, bias [h]) such that score_mod adds exactly bias[h] wherever q_pos - k_pos >=
        distance; None when the bias has no such constant tail."""
        return None


@register("positional", "none")
class NoPositional(Positional):
    """No positional information (NoPE); causal masking alone orders the tokens."""

    def __init__(self, dims: Dims, params: BlockParams):
        super().__init__()


def sinusoid_table(max_len: int, dim: int, base: float = 10000.0, layout: str = "interleaved") -> torch.Tensor:
    """The paper's table: PE[pos, 2i] = sin(pos / base^(2i/d)), PE[pos, 2i+1] = cos(...).

    ``layout="halves"`` puts every sin first and every cos after them (Marian, fairseq-style).
    """
    position = torch.arange(max_len, dtype=torch.float64)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(base) / dim))
    table = torch.zeros(max_len, dim, dtype=torch.float64)
    if layout == "halves":
        n_sin = (dim + 1) // 2
        table[:, :n_sin] = torch.sin(position * div)
        table[:, n_sin:] = torch.cos(position * div)[:, : dim // 2]
        return table.float()
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)[:, : dim // 2]
    return table.float()


@register("positional", "sinusoidal")
class Sinusoidal(Positional):
    """Fixed sin/cos table added to the embeddings (Vaswani et al. 2017, section 3.5)."""

    adds_to_embeddings = True

    float32_tables = ("table",)

    class Params(BlockParams):
        base: float = Field(10000.0, gt=1)
        layout: Literal["interleaved", "halves"] = Field(
            "interleaved", description="interleaved sin/cos (the paper) or [sin | cos] halves (Marian)"
        )

    def __init__(self, dims: Dims, params: Params):
        super().__init__()
        table = sinusoid_table(dims.max_len, dims.d_model, params.base, params.layout)
        self.register_buffer("table", table, persistent=False)

    def embed(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return x + F.embedding(positions, self.table).to(x.dtype)


@register("positional", "learned")
class Learned(Positional):
    """A learned vector per position, added to the embeddings (GPT-2, BERT).

    ``offset``: the table has max_len + offset rows and position p reads row p + offset (OPT: 2;
    RoBERTa: pad_id + 1); the first ``offset`` rows are kept, unread, so that a file's table round-trips."""

    adds_to_embeddings = True

    class Params(BlockParams):
        offset: int = Field(0, ge=0, le=1_000_000, description="position p reads row p + offset (OPT: 2)")

    def __init__(self, dims: Dims, params: Params):
        super().__init__()
        self.offset = params.offset
        self.weight = nn.Parameter(torch.empty(dims.max_len + params.offset, dims.d_model))
        nn.init.normal_(self.weight, std=0.02)

    def embed(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return x + F.embedding(positions + self.offset, self.weight)  # [t, d], broadcast over the batch


class RopeScaling(BlockParams):
    """Rescaled rotary frequencies for longer contexts: ``linear`` (position interpolation) or ``llama3``."""

    type: Literal["linear", "llama3"]
    factor: float = Field(gt=0, description="frequencies are divided by this (llama3: the low ones)")
    low_freq_factor: float = Field(1.0, gt=0, description="llama3: longer wavelengths than original_max_len / this scale")
    high_freq_factor: float = Field(4.0, gt=0, description="llama3: shorter wavelengths than original_max_len / this stay")
    original_max_len: PositiveInt = Field(8192, description="llama3: the context length of pre-training")

    @model_validator(mode="after")
    def _factors(self) -> "RopeScaling":
        if self.type == "llama3" and self.high_freq_factor <= self.low_freq_factor:
            raise ValueError(
                f"high_freq_factor ({self.high_freq_factor}) must be above low_freq_factor ({self.low_freq_factor})"
            )
        return self

    def apply(self, inv_freq: torch.Tensor) -> torch.Tensor:
        """The rescaled inverse frequencies (as Hugging Face's linear and llama3 rope types)."""
        if self.type == "linear":
            return inv_freq / self.factor
        low_wavelen = self.original_max_len / self.low_freq_factor
        high_wavelen = self.original_max_len / self.high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / self.factor, inv_freq)
        low, high = self.low_freq_factor, self.high_freq_factor
        smooth = (self.original_max_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / self.factor + smooth * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        return torch.where(medium, smoothed, scaled)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """GPT-J's rotate_every_two: (x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)."""
    pairs = x.unflatten(-1, (-1, 2))  # [..., r/2, 2]
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)  # [..., r]


@register("positional", "rope")
class Rotary(Positional):
    """Rotary position embedding (Su et al. 2021): rotates q and k by position-dependent angles.

    ``layout: half`` pairs dimension i with i + r/2 (GPT-NeoX, LLaMA in Hugging Face), ``interleaved``
    pairs 2i with 2i + 1 (GPT-J, the paper). ``fraction`` rotates only the first r = int(fraction *
    head_dim) dimensions of each head and passes the rest through (GPT-NeoX rotary_pct, GPT-J
    rotary_dim, Phi / StableLM partial_rotary_factor); frequencies are theta^(-2i/r).
    """

    rotates = True
    float32_tables = ("cos", "sin")

    class Params(BlockParams):
        theta: float = Field(10000.0, gt=1)
        scaling: RopeScaling | None = Field(None, description="rescaled frequencies: {type: linear | llama3, factor}")
        fraction: float = Field(1.0, gt=0, le=1, description="rotate the first int(fraction * head_dim) dims of each "
                                                             "head (partial rotary: NeoX 0.25, Phi-2 0.4)")
        layout: Literal["half", "interleaved"] = Field(
            "half", description="pair dim i with i + r/2 (NeoX, LLaMA) or 2i with 2i + 1 (GPT-J)")

        def rotary_dim(self, dims: Dims) -> int:
            return int(self.fraction * dims.head_dim)

        def check(self, dims: Dims) -> str | None:
            r = self.rotary_dim(dims)
            if self.fraction == 1.0 and dims.head_dim % 2:
                return f"rope needs an even head_dim, got {dims.head_dim} (d_model {dims.d_model} / n_heads {dims.n_heads})"
            if r < 2 or r % 2:
                return (f"rope rotates int(fraction * head_dim) = int({self.fraction} * {dims.head_dim}) = {r} dims, "
                        "which must be even and at least 2")
            return None

    def __init__(self, dims: Dims, params: Params):
        super().__init__()
        self.head_dim = dims.head_dim
        self.rotary_dim = params.rotary_dim(dims)
        self.rotate_pairs = rotate_pairs if params.layout == "interleaved" else rotate_half
        inv_freq = self.inverse_frequencies(params, dims)
        angles = torch.outer(torch.arange(dims.max_len, dtype=torch.float32), inv_freq)  # [max_len, r/2]
        if params.layout == "interleaved":
            angles = angles.repeat_interleave(2, dim=-1)  # [max_len, r]: a0 a0 a1 a1 ...
        else:
            angles = torch.cat((angles, angles), dim=-1)  # [max_len, r]: a0 a1 ... a0 a1 ...
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def inverse_frequencies(self, params: Params, dims: Dims) -> torch.Tensor:
        """theta^(-2i/r) for i < r/2 (r the rotated dims), rescaled by ``scaling`` when set; subclasses may
        change these."""
        r = params.rotary_dim(dims)
        inv_freq = 1.0 / params.theta ** (torch.arange(0, r, 2, dtype=torch.float32) / r)
        return params.scaling.apply(inv_freq) if params.scaling is not None else inv_freq

    def prepare(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> Any:
        return self.cos[q_pos], self.sin[q_pos]  # [t, r] each

    def rotate(self, q: torch.Tensor, k: torch.Tensor, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = state
        if cos.dim() == 3:  # per-row positions (packed documents): [b, t, r] -> [b, 1, t, r]
            cos, sin = cos[:, None], sin[:, None]
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        return self._rotate(q, cos, sin), self._rotate(k, cos, sin)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x [b, h, t, hd]: its first r dims rotated, the rest passed through."""
        if self.rotary_dim == self.head_dim:
            return x * cos + self.rotate_pairs(x) * sin
        rot, rest = x[..., : self.rotary_dim], x[..., self.rotary_dim:]
        return torch.cat((rot * cos + self.rotate_pairs(rot) * sin, rest), dim=-1)


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
    relative_scores = True

    def __init__(self, dims: Dims, params: BlockParams):
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(dims.n_heads), persistent=False)

    def prepare(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> Any:
        return q_pos, k_pos

    def score_mod(self, state: Any) -> ScoreMod:
        q_pos, k_pos = state
        slopes = self.slopes

        def alibi(score, b, h, q_idx, kv_idx):
            distance = (q_pos[q_idx] - k_pos[kv_idx]).abs()
            return score - (slopes[h] * distance).to(score.dtype)

        return alibi

    def key_bias(self, state: Any) -> torch.Tensor:
        _, k_pos = state  # -s * (q - k) = s * k - s * q where k <= q
        return self.slopes.float()[:, None] * k_pos.unsqueeze(-2).float()  # [h, k] or [b, h, k]
