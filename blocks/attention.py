"""Multi-head attention (Vaswani et al. 2017, section 3.2) and its grouped-query variants.

A layer computes q, k, v and hands them to ``ctx.attend``, which composes the stack's masks,
the layer's ``window`` and the positional score_mod and picks the kernel (``blocks/dispatch.py``):
SDPA's causal path by default, block-local, chunked or FlexAttention kernels for the rest, the
explicit path softmax(q k^T / sqrt(d) + bias) v when the weights are asked for
(``need_weights=True``). ``scale`` replaces 1/sqrt(d) (T5 uses 1.0); ``out_bias`` sets the out
projection's bias apart from q / k / v's (Qwen2: none; GPT-Neo: only there).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import ConfigDict, Field, PositiveInt
from torch import nn

from stackform.registry import BlockParams, Dims, register

from .context import AttentionContext
from .protocol import Cost, CostContext, linear_cost
from .softcap import attend_with_score_mods, softcap_mod


class LayerCache:
    """Keys and values of one attention layer kept between decoding steps."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None  # [b, kv, t, hd]
        self.v: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is not None:
            k, v = torch.cat((self.k, k), dim=2), torch.cat((self.v, v), dim=2)
        self.k, self.v = k, v
        return k, v

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search)."""
        if self.k is not None:
            self.k, self.v = self.k.index_select(0, index), self.v.index_select(0, index)


class AttentionParams(BlockParams):
    bias: bool = Field(True, description="biases on the q/k/v projections (and out, unless out_bias says)")
    out_bias: bool | None = Field(None, description="a bias on the out projection; default: as bias (Qwen2: false, "
                                                    "GPT-Neo: true with bias false)")
    qk_norm: bool = Field(False, description="RMS-normalize queries and keys per head")
    qk_norm_scope: Literal["head", "all"] = Field("head", description="with qk_norm: over each head (Qwen3) or over "
                                                                      "all heads' q and all k at once (OLMo 2)")
    window: PositiveInt | None = Field(None, description="attend only to keys closer than this")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on attention weights")
    scale: float | None = Field(None, gt=0, description="score scale; default 1/sqrt(head_dim) (T5: 1.0)")
    softcap: float | None = Field(None, gt=0, description="scores become softcap * tanh(score / softcap) "
                                                          "(Gemma 2: 50)")

    def check(self, dims: Dims) -> str | None:
        if self.qk_norm_scope != "head" and not self.qk_norm:
            return f"qk_norm_scope: {self.qk_norm_scope} needs qk_norm: true"
        return None


@register("attention", "mha")
class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention; self-attention or cross-attention."""

    Params = AttentionParams

    def __init__(self, dims: Dims, params: AttentionParams, cross: bool = False):
        super().__init__()
        self.n_heads = dims.n_heads
        self.n_kv_heads = self.kv_heads(dims, params)
        self.head_dim = dims.head_dim
        self.window = None if cross else params.window  # a window compares positions of one sequence
        self.dropout = params.dropout
        self.scale = params.scale
        self.score_mods = [softcap_mod(params.softcap)] if params.softcap is not None else []
        self.cross = cross
        q_size, kv_size = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        self.q_size, self.kv_size = q_size, kv_size
        if cross:
            self.q = nn.Linear(dims.d_model, q_size, bias=params.bias)
            self.kv = nn.Linear(dims.d_model, 2 * kv_size, bias=params.bias)  # [k | v]
        else:
            self.qkv = nn.Linear(dims.d_model, q_size + 2 * kv_size, bias=params.bias)  # [q | k | v]
        out_bias = params.bias if params.out_bias is None else params.out_bias
        self.out = nn.Linear(q_size, dims.d_model, bias=out_bias)
        self.out.residual_out = True  # scaled init (GPT-2)
        self.qk_norm_all = params.qk_norm_scope == "all"  # one norm over all heads, before the head split
        self.q_norm = nn.RMSNorm(q_size if self.qk_norm_all else self.head_dim, eps=1e-6) if params.qk_norm else None
        self.k_norm = nn.RMSNorm(kv_size if self.qk_norm_all else self.head_dim, eps=1e-6) if params.qk_norm else None

    def kv_heads(self, dims: Dims, params: AttentionParams) -> int:
        return dims.n_heads

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, n, self.head_dim).transpose(1, 2)  # [b, t, n*hd] -> [b, n, t, hd]

    def _merge(self, y: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = y.shape
        return y.transpose(1, 2).reshape(b, t, self.q_size)  # [b, h, t, hd] -> [b, t, h*hd]

    def forward(
        self,
        x: torch.Tensor,
        ctx: AttentionContext,
        memory: torch.Tensor | None = None,
        cache: LayerCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [b, t, d] -> ([b, t, d], weights [b, h, t, s] or None)."""
        b, t, _ = x.shape
        if self.cross:
            q = self.q(x)
            q = self._heads(self.q_norm(q) if self.qk_norm_all else q, self.n_heads)
            if cache is not None and cache.k is not None:
                k, v = cache.k, cache.v  # the source's keys and values, computed once
            else:
                k, v = self.kv(memory).split(self.kv_size, dim=-1)
                if self.qk_norm_all:
                    k = self.k_norm(k)  # [b, s, kv*hd]
                k, v = self._heads(k, self.n_kv_heads), self._heads(v, self.n_kv_heads)
                if self.k_norm is not None and not self.qk_norm_all:
                    k = self.k_norm(k)
                if cache is not None:
                    cache.append(k, v)
            if self.q_norm is not None and not self.qk_norm_all:
                q = self.q_norm(q)
        else:
            q, k, v = self.qkv(x).split((self.q_size, self.kv_size, self.kv_size), dim=-1)
            if self.qk_norm_all:
                q, k = self.q_norm(q), self.k_norm(k)  # [b, t, h*hd], [b, t, kv*hd]
            q, k, v = self._heads(q, self.n_heads), self._heads(k, self.n_kv_heads), self._heads(v, self.n_kv_heads)
            if self.q_norm is not None and not self.qk_norm_all:
                q, k = self.q_norm(q), self.k_norm(k)
            q, k = ctx.rotate(q, k)
            if cache is not None:
                k, v = cache.append(k, v)
        dropout = self.dropout if self.training else 0.0
        if self.score_mods:  # not additive: applied to the real scores (blocks/softcap.py)
            plan = ctx.plan(self.window, self.n_heads)
            y, weights = attend_with_score_mods(q, k, v, plan, self.scale, self.score_mods, dropout, need_weights)
        else:
            y, weights = ctx.attend(q, k, v, self.window, self.scale, dropout, need_weights)  # [b, h, t, hd]
        return self.out(self._merge(y)), weights

    def cost(self, ctx: CostContext) -> Cost:
        """Projections (2 FLOPs a weight) and 4 x keys x heads x head_dim for scores and weighted sum;
        kept for backward: the projections' inputs, q, k, v, the output, a softmax statistic per head,
        the rotated q and k under rope; the q/k norms about d_model each."""
        keys = min(self.window or ctx.kv_len, ctx.kv_len)
        base = linear_cost(self)
        flops = sum(2 * m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))
        acts = sum(m.in_features for m in self.modules() if isinstance(m, nn.Linear))
        acts += 2 * self.q_size + 2 * self.kv_size + self.n_heads + (4 * ctx.d_model if self.q_norm is not None else 0)
        if self.cross:
            acts -= self.kv.in_features  # the encoder output: one tensor for all layers (the stack counts it)
        elif ctx.rotates:
            acts += self.q_size + self.kv_size
        return Cost(flops + 4 * keys * self.n_heads * self.head_dim, acts, base.params)


@register("attention", "gqa")
class GroupedQueryAttention(MultiHeadAttention):
    """Grouped-query attention (Ainslie et al. 2023): n_kv_heads key/value heads shared by groups of queries."""

    class Params(AttentionParams):
        model_config = ConfigDict(json_schema_extra={"examples": [{"n_kv_heads": 2}]})
        n_kv_heads: PositiveInt

        def check(self, dims: Dims) -> str | None:
            if dims.n_heads % self.n_kv_heads:
                return f"n_heads ({dims.n_heads}) must be divisible by n_kv_heads ({self.n_kv_heads})"
            return super().check(dims)

    def kv_heads(self, dims: Dims, params: Params) -> int:
        return params.n_kv_heads


@register("attention", "mqa")
class MultiQueryAttention(MultiHeadAttention):
    """Multi-query attention (Shazeer 2019): one key/value head shared by all query heads."""

    def kv_heads(self, dims: Dims, params: AttentionParams) -> int:
        return 1
