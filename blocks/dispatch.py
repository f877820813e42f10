"""Pick the fastest correct attention kernel for a MaskPlan, the device, the shapes and grad need.

    weights asked for                  -> explicit
    nothing hidden, or plain causal    -> sdpa (is_causal), as before
    CUDA, keys >= FLEX_MIN_KEYS        -> flex (BlockMask + score_mod), when torch has it (no grad:
                                          see FLEX_TRAINING)
    a window, as many queries as keys  -> blocked, when the blocks cover under half the keys
    a score bias, or keys bounded      -> chunked, when there is more than one chunk
    anything else                      -> dense

``force(name)`` (a context manager) makes every call that can take that kernel take it; the tests
use it to check each kernel against ``dense``.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch

from . import kernels
from .mask_plan import MaskPlan

# Keys from which FlexAttention beats SDPA with a dense mask on CUDA. To be measured in the GPU
# round (tests/benchmarks/bench_gpu_attention_variants.py); below it the CPU rules apply.
FLEX_MIN_KEYS = 1024

# FlexAttention's backward gave other gradients than the dense path on an H200 (torch 2.11, the
# GPU round of 2026-12-04: test_flex_gradients_match_dense_on_cuda[decoder-causal-alibi] failed).
# Until that test passes on a GPU, flex serves only calls without gradients (generation,
# evaluation); training takes blocked / chunked / dense, which match dense everywhere.
FLEX_TRAINING = False

KERNELS: dict[str, Callable] = {
    "sdpa": kernels.sdpa, "dense": kernels.dense, "blocked": kernels.blocked, "chunked": kernels.chunked,
    "flex": kernels.flex, "explicit": kernels.explicit,
}
_forced: list[str] = []


@contextlib.contextmanager
def force(name: str) -> Iterator[None]:
    """Within the block, every attention call that ``name`` can serve uses it (tests, benchmarks)."""
    if name not in KERNELS:
        raise ValueError(f"unknown attention kernel {name!r}; known: {', '.join(KERNELS)}")
    _forced.append(name)
    try:
        yield
    finally:
        _forced.pop()


def flex_available() -> bool:
    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def applies(name: str, plan: MaskPlan, device: torch.device, grad: bool, dropout: float) -> bool:
    """Whether kernel ``name`` computes this plan correctly here."""
    if name == "sdpa":
        return plan.unmasked or (plan.causal and (plan.n_q == plan.n_k or plan.n_q == 1))
    if name == "blocked":
        return kernels.blocked_applies(plan)
    if name == "chunked":
        return kernels.chunked_applies(plan)
    if name == "flex":  # no backward on CPU, no dropout; with gradients only once checked (FLEX_TRAINING)
        return flex_available() and not dropout and (not grad or (device.type == "cuda" and FLEX_TRAINING))
    return True


def choose(plan: MaskPlan, device: torch.device, grad: bool, dropout: float, need_weights: bool) -> str:
    """The kernel for one attention call."""
    if need_weights:
        return "explicit"
    if _forced and applies(_forced[-1], plan, device, grad, dropout):
        return _forced[-1]
    if applies("sdpa", plan, device, grad, dropout):
        return "sdpa"
    if device.type == "cuda" and plan.n_k >= FLEX_MIN_KEYS and applies("flex", plan, device, grad, dropout):
        return "flex"
    if kernels.blocked_applies(plan):
        w = kernels._block_width(plan)
        span = -(-plan.behind // w) + 1 + (-(-plan.ahead // w) if plan.ahead > 0 else 0)
        if 2 * span * w <= plan.n_k:
            return "blocked"
    if kernels.chunked_applies(plan) and plan.n_q > kernels.CHUNK:
        return "chunked"
    return "dense"


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: MaskPlan, scale: float | None,
           dropout: float, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softmax(q k^T * scale + score_mod, masked) v with the chosen kernel: ([b, h, t, hd], weights or None)."""
    grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    name = choose(plan, q.device, grad, dropout, need_weights)
    if name == "explicit":
        return kernels.explicit(q, k, v, plan, scale, dropout)
    return KERNELS[name](q, k, v, plan, scale, dropout), None
