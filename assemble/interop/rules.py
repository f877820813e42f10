"""Name-mapping rules between stackform and Hugging Face tensors, both ways.

A ``Rule`` makes one stackform tensor from one or more Hugging Face tensors (``join``)
and gives them back (``split``): a copy, a transpose (GPT-2's Conv1D), a concatenation
(q | k | v into the fused ``qkv``; gate | up into ``gate_up``) or a reshape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class Rule:
    """stackform tensor ``ours`` <-> Hugging Face tensors ``theirs``."""

    ours: str
    theirs: tuple[str, ...]
    join: Callable[[list[Tensor]], Tensor]
    split: Callable[[Tensor], list[Tensor]]


def same(ours: str, theirs: str) -> Rule:
    """The same tensor under another name."""
    return Rule(ours, (theirs,), lambda ts: ts[0], lambda t: [t])


def transposed(ours: str, theirs: str) -> Rule:
    """GPT-2's Conv1D stores [in, out]; nn.Linear stores [out, in]."""
    return Rule(ours, (theirs,), lambda ts: ts[0].t().contiguous(), lambda t: [t.t().contiguous()])


def fused(ours: str, theirs: list[str], sizes: list[int]) -> Rule:
    """Several tensors concatenated along dim 0 (rows of a fused projection)."""
    return Rule(ours, tuple(theirs), lambda ts: torch.cat(ts, dim=0), lambda t: [p.contiguous() for p in t.split(sizes)])


def reshaped(ours: str, theirs: str, their_shape: tuple[int, ...]) -> Rule:
    """One tensor with another shape (Marian's final_logits_bias is [1, vocab])."""
    return Rule(ours, (theirs,), lambda ts: ts[0].reshape(-1), lambda t: [t.reshape(their_shape)])


def linear(ours: str, theirs: str, bias: bool) -> list[Rule]:
    """weight (and bias) of one nn.Linear."""
    rules = [same(f"{ours}.weight", f"{theirs}.weight")]
    return rules + [same(f"{ours}.bias", f"{theirs}.bias")] if bias else rules


def norm(ours: str, theirs: str, bias: bool = True, weight: str = "weight", bias_name: str = "bias") -> list[Rule]:
    """weight (and bias) of a LayerNorm or RMSNorm; BERT-era names may differ (gamma / beta)."""
    rules = [same(f"{ours}.weight", f"{theirs}.{weight}")]
    return rules + [same(f"{ours}.bias", f"{theirs}.{bias_name}")] if bias else rules


def self_attention(ours: str, q: str, k: str, v: str, o: str, q_size: int, kv_size: int, bias: bool,
                   out_bias: bool | None = None) -> list[Rule]:
    """Separate q, k, v, o projections -> our fused ``qkv`` [q | k | v] and ``out`` (``out_bias``: o's bias
    apart from q / k / v's, None: as ``bias``)."""
    sizes = [q_size, kv_size, kv_size]
    rules = [fused(f"{ours}.qkv.weight", [f"{q}.weight", f"{k}.weight", f"{v}.weight"], sizes)]
    if bias:
        rules.append(fused(f"{ours}.qkv.bias", [f"{q}.bias", f"{k}.bias", f"{v}.bias"], sizes))
    return rules + linear(f"{ours}.out", o, bias if out_bias is None else out_bias)


def cross_attention(ours: str, q: str, k: str, v: str, o: str, kv_size: int, bias: bool) -> list[Rule]:
    """Separate q, k, v, o projections -> our ``q``, fused ``kv`` [k | v] and ``out``."""
    rules = linear(f"{ours}.q", q, bias)
    rules.append(fused(f"{ours}.kv.weight", [f"{k}.weight", f"{v}.weight"], [kv_size, kv_size]))
    if bias:
        rules.append(fused(f"{ours}.kv.bias", [f"{k}.bias", f"{v}.bias"], [kv_size, kv_size]))
    return rules + linear(f"{ours}.out", o, bias)


def few(names: list[str], shown: int = 5) -> str:
    """``a, b, c (+4 more)``."""
    return ", ".join(names[:shown]) + (f" (+{len(names) - shown} more)" if len(names) > shown else "")


def per_head_fused(ours: str, theirs: str, n_heads: int, head_dim: int) -> Rule:
    """A fused projection stored per head, [h, 3, hd] rows (BLOOM, GPT-BigCode without multi-query),
    <-> our [3, h, hd] rows (q | k | v); works for the weight [rows, in] and the bias [rows]."""
    def join(ts: list[Tensor]) -> Tensor:
        t = ts[0]
        rest = t.shape[1:]
        return t.reshape(n_heads, 3, head_dim, *rest).transpose(0, 1).reshape(t.shape).contiguous()

    def split(t: Tensor) -> list[Tensor]:
        rest = t.shape[1:]
        return [t.reshape(3, n_heads, head_dim, *rest).transpose(0, 1).reshape(t.shape).contiguous()]
    return Rule(ours, (theirs,), join, split)
