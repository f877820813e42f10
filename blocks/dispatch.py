"""Pick the fastest correct attention kernel for a MaskPlan, the device, the shapes and grad need.

    weights asked for                  -> explicit
    nothing hidden, or plain causal    -> sdpa (is_causal), as before
    CUDA, keys >= FLEX_MIN_KEYS        -> flex (BlockMask + score_mod), when torch has it (no grad:
                                          see FLEX_TRAINING)
    a bias with a key_bias form        -> folded: the bias goes into q and k, then the masks alone
                                          are dispatched again (plain causal: sdpa)
    CPU, causal, a bias with a far_bias -> far_near: SDPA's causal kernel for the far keys, a biased
                                          block-local kernel for the band near the diagonal
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

from . import far_near, folded, kernels
from .mask_plan import MaskPlan

# Keys from which FlexAttention beats SDPA with a dense mask on CUDA. To be measured in the GPU
# round (tests/benchmarks/bench_gpu_attention_variants.py); below it the CPU rules apply.
FLEX_MIN_KEYS = 1024

# FlexAttention's backward gave other gradients than the dense path on an H200 (torch 2.11, the
# GPU round of 2026-12-04: test_flex_gradients_match_dense_on_cuda[decoder-causal-alibi] failed).
# Until that test passes on a GPU, flex serves only calls without gradients (generation,
# evaluation); training takes blocked / chunked / dense, which match dense everywhere.
FLEX_TRAINING = False

# A head whose far keys are negligible attends only to the near ones (far_near.band_only) when
# WINDOWED x that distance <= keys; else to every earlier key (folded, SDPA is_causal).
WINDOWED = 4

KERNELS: dict[str, Callable] = {
    "sdpa": kernels.sdpa, "dense": kernels.dense, "blocked": kernels.blocked, "chunked": kernels.chunked,
    "flex": kernels.flex, "explicit": kernels.explicit, "folded": None, "far_near": far_near.far_near,
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


def applies(name: str, plan: MaskPlan, device: torch.device, grad: bool, dropout: float,
            dtype: torch.dtype = torch.float32) -> bool:
    """Whether kernel ``name`` computes this plan correctly here."""
    if name == "sdpa":
        return plan.unmasked or (plan.causal and (plan.n_q == plan.n_k or plan.n_q == 1))
    if name == "blocked":
        return kernels.blocked_applies(plan)
    if name == "chunked":
        return kernels.chunked_applies(plan)
    if name == "flex":  # no backward on CPU, no dropout; with gradients only once checked (FLEX_TRAINING)
        return flex_available() and not dropout and (not grad or (device.type == "cuda" and FLEX_TRAINING))
    if name in ("folded", "far_near") and torch.compiler.is_compiling():
        return False  # both read data-dependent sizes (.item()): a graph break per call under torch.compile
    if name == "folded":
        bias = plan.key_bias() if plan.score_mod is not None else None
        return bias is not None and plan.cached(("folded", dtype), lambda: folded.precise_enough(bias, dtype))
    if name == "far_near":
        return device.type == "cpu" and not dropout and far_near.applies(plan, dtype)
    return True


def choose(plan: MaskPlan, device: torch.device, grad: bool, dropout: float, need_weights: bool,
           dtype: torch.dtype = torch.float32) -> str:
    """The kernel for one attention call."""
    if need_weights:
        return "explicit"
    if _forced and applies(_forced[-1], plan, device, grad, dropout, dtype):
        return _forced[-1]
    if applies("sdpa", plan, device, grad, dropout):
        return "sdpa"
    if device.type == "cuda" and plan.n_k >= FLEX_MIN_KEYS and applies("flex", plan, device, grad, dropout):
        return "flex"
    if applies("folded", plan, device, grad, dropout, dtype):
        return "folded"
    if applies("far_near", plan, device, grad, dropout, dtype):
        return "far_near"
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
    name = choose(plan, q.device, grad, dropout, need_weights, q.dtype)
    if name == "explicit":
        return kernels.explicit(q, k, v, plan, scale, dropout)
    if name == "folded":  # the bias goes into q and k; the masks alone choose the kernel
        return _folded(q, k, v, plan, scale, dropout), None
    return KERNELS[name](q, k, v, plan, scale, dropout), None


def _folded(q, k, v, plan: MaskPlan, scale, dropout) -> torch.Tensor:
    """Fold the key bias into q and k. Under the plain causal mask on CPU, heads whose bias makes far
    keys negligible (``folded.cutoffs``) attend only within that distance, with the exact bias
    (``far_near.band_only``): no weight in float32's denormal range, and no rounding at the folded
    bias's magnitude, which grows with the length."""
    inner = plan.unbiased()
    reach = None
    if inner.causal and plan.n_q == plan.n_k and q.device.type == "cpu" and not dropout \
            and q.dtype in far_near.DTYPES and plan.relative and not plan.per_row:
        reach = folded.cutoffs(plan.key_bias(), q, k, scale)
        reach = [-(-d // far_near.ALIGN) * far_near.ALIGN for d in reach]  # farther: as exact, fewer shapes
    if reach is None:
        q2, k2, v2, scale2 = folded.fold(q, k, v, plan.key_bias(), scale)
        return attend(q2, k2, v2, inner, scale2, dropout)[0][..., : v.shape[-1]]
    if k.shape[1] != q.shape[1]:
        k, v = k.repeat_interleave(q.shape[1] // k.shape[1], 1), v.repeat_interleave(q.shape[1] // v.shape[1], 1)
    near = [WINDOWED * d <= plan.n_k and far_near.band_fits(plan, d) for d in reach]  # per head
    runs, h0 = [], 0
    for h1 in range(1, len(near) + 1):  # runs of heads: each banded head alone, the others together
        if h1 == len(near) or near[h0] or near[h1]:
            runs.append((h0, h1))
            h0 = h1
    sizes = [h1 - h0 for h0, h1 in runs]
    outs = []  # split, not sliced: one backward node each, not a zero-filled copy per run
    for (h0, h1), qs, ks, vs in zip(runs, q.split(sizes, 1), k.split(sizes, 1), v.split(sizes, 1)):
        if near[h0]:
            outs.append(far_near.band_only(qs, ks, vs, plan, scale, reach[h0], (h0, h1)))
        else:
            q2, k2, v2, scale2 = folded.fold(qs, ks, vs, plan.key_bias()[h0:h1], scale)
            outs.append(attend(q2, k2, v2, inner, scale2, dropout)[0][..., : v.shape[-1]])
    return torch.cat(outs, dim=1)  # [b, h, t, hd]
