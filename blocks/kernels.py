"""Attention kernels for a composed MaskPlan. Each takes q [b, h, t, hd], k and v [b, kv, s, hd] and
returns [b, h, t, hd]; they agree with ``dense`` (see tests/blocks/test_kernels.py).

- ``sdpa``: SDPA without a mask (nothing hidden) or with ``is_causal`` (plain causal);
- ``dense``: SDPA with the whole [b|1, h|1, t, s] mask or bias (4-D, so the CPU flash kernel runs);
- ``blocked``: windows; queries in blocks of W each see a few neighbouring key blocks, one batched
  SDPA call on [b*h, blocks, W, m*W] (cost T x m*W, not T^2);
- ``chunked``: score biases and masks that bound how far ahead a key may be; queries in chunks of
  CHUNK each see only their key range, the chunk's bias built on the fly (a shifted slice of one
  reference block when the plan is shift-invariant) and, when it needs a gradient (a learned table),
  rebuilt in backward (memory O(CHUNK x s), not O(t x s));
- ``flex``: FlexAttention with a BlockMask and the score_mod (compiled on CUDA);
- ``explicit``: softmax(q k^T * scale + bias) v, which also returns the weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .chunked import Chunk, ChunkedAttention
from .mask_plan import MaskPlan

CHUNK = 512  # queries per chunk of the chunked kernel
MIN_BLOCK = 64  # the blocked kernel's block width is max(window / BLOCKS_PER_WINDOW, MIN_BLOCK)
# Narrower blocks than the window: each query sees window + W keys instead of 2W (a window of 256
# at T = 4096, one thread: 0.58 s with W = 256, 0.51 s with W = 64, attention forward + backward)
BLOCKS_PER_WINDOW = 4


def _sdpa(q, k, v, mask, scale, dropout, is_causal=False):
    gqa = k.shape[1] != q.shape[1]
    if mask is not None and mask.dtype != torch.bool and mask.dtype != q.dtype:
        mask = mask.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal,
                                          scale=scale, enable_gqa=gqa)


def sdpa(q, k, v, plan: MaskPlan, scale, dropout):
    causal = plan.causal and plan.n_q > 1
    if causal and plan.n_q != plan.n_k:
        raise ValueError("sdpa: is_causal needs as many queries as keys")
    return _sdpa(q, k, v, None, scale, dropout, is_causal=causal)


def _dense_mask(plan: MaskPlan) -> torch.Tensor | None:
    return plan.cached("dense", lambda: plan.dense(0, plan.n_q, 0, plan.n_k))


def dense(q, k, v, plan: MaskPlan, scale, dropout):
    return _sdpa(q, k, v, _dense_mask(plan), scale, dropout)


def explicit(q, k, v, plan: MaskPlan, scale, dropout):
    """(output, weights [b, h, t, s]); a query that may see no key gets zero weights."""
    if k.shape[1] != q.shape[1]:
        repeat = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)  # [b, h, s, hd]
    scores = q @ k.transpose(-2, -1)  # [b, h, t, s]
    scores = scores * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    mask = _dense_mask(plan)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.to(scores.dtype)
    weights = scores.float().softmax(dim=-1).nan_to_num(0.0).to(q.dtype)
    return F.dropout(weights, dropout, training=dropout > 0) @ v, weights


def _block_width(plan: MaskPlan) -> int:
    return max(-(-(plan.behind + 1) // BLOCKS_PER_WINDOW), MIN_BLOCK)


def blocked_applies(plan: MaskPlan) -> bool:
    return plan.behind is not None and plan.ahead is not None and plan.n_q == plan.n_k


def _blocked_mask(plan: MaskPlan, w: int, back: int, span: int, n_blocks: int, batch: int, device) -> torch.Tensor:
    """[b*h | 1, blocks, W, span*W]: the mask (bool) or bias (float) of every query block's key blocks."""
    n = plan.n_q
    q_idx = torch.arange(n_blocks * w, device=device).view(n_blocks, w, 1)  # [nb, W, 1]
    kv_idx = (torch.arange(n_blocks, device=device)[:, None, None] - back) * w \
        + torch.arange(span * w, device=device)[None, None, :]  # [nb, 1, m*W]
    valid = (kv_idx >= 0) & (kv_idx < n) & (q_idx < n)
    out = plan.evaluate(q_idx.clamp(max=n - 1), kv_idx.clamp(0, n - 1), valid)  # [b|1, h|1, nb, W, m*W]
    if out.shape[0] > 1 or out.shape[1] > 1:  # per row or per head: one mask per (row, head) pair
        out = out.expand(batch, plan.n_heads, *out.shape[2:])
    return out.reshape(-1, *out.shape[2:])  # [b*h | 1, nb, W, m*W]


def blocked(q, k, v, plan: MaskPlan, scale, dropout):
    """Block-local attention: queries in blocks of W, each seeing the key blocks its window reaches."""
    b, h, n, d = q.shape
    w = _block_width(plan)
    back, ahead = -(-plan.behind // w), -(-plan.ahead // w) if plan.ahead > 0 else 0
    span, n_blocks = back + 1 + ahead, -(-n // w)
    tail = n_blocks * w - n
    if k.shape[1] != h:
        k, v = k.repeat_interleave(h // k.shape[1], dim=1), v.repeat_interleave(h // v.shape[1], dim=1)
    qb = F.pad(q, (0, 0, 0, tail)).reshape(b * h, n_blocks, w, d)  # [b*h, nb, W, hd]

    def key_blocks(x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, back * w, ahead * w + tail))  # [b, h, (nb + span - 1) * W, hd]
        return x.unfold(2, span * w, w).transpose(-1, -2).reshape(b * h, n_blocks, span * w, d)

    mask = plan.cached(("blocked", w), lambda: _blocked_mask(plan, w, back, span, n_blocks, b, q.device))
    y = _sdpa(qb, key_blocks(k), key_blocks(v), mask, scale, dropout)  # [b*h, nb, W, hd]
    return y.reshape(b, h, n_blocks * w, d)[:, :, :n]


def chunked_applies(plan: MaskPlan) -> bool:
    return plan.score_mod is not None or plan.ahead is not None or plan.behind is not None


def _reference(plan: MaskPlan, size: int, float_mask: bool) -> torch.Tensor | None:
    """Mask + bias of the last ``size`` queries over every key: with a shift-invariant plan whose keys
    never lie ahead, chunk [q0, q0 + size) is a slice of it, shifted by n_q - size - q0 columns."""
    return plan.dense(plan.n_q - size, plan.n_q, 0, plan.n_k, float_mask=float_mask or plan.score_mod is not None)


def _chunks(plan: MaskPlan, size: int, shifted: bool, dtype: torch.dtype) -> list[Chunk]:
    out = []
    for q0 in range(0, plan.n_q, size):
        q1 = min(q0 + size, plan.n_q)
        lo, hi = plan.key_range(q0, q1)
        if shifted:
            r0 = size - (q1 - q0)  # a short last chunk takes the reference's last rows
            s = plan.n_q - size + r0 - q0  # column shift: the reference's query r0 + i is at q0 + i + s

            def mask(ref, r0=r0, r1=r0 + q1 - q0, lo=lo, hi=hi, s=s):
                return ref[:, :, r0:r1, lo + s: hi + s]
        else:
            def mask(ref, q0=q0, q1=q1, lo=lo, hi=hi):
                m = plan.dense(q0, q1, lo, hi, float_mask=True)
                return None if m is None else m.to(dtype)
        out.append(Chunk(q0, q1, lo, hi, mask))
    return out


def chunked(q, k, v, plan: MaskPlan, scale, dropout):
    """Query-chunked attention: each chunk sees only its key range, its mask and bias built on the fly."""
    size = min(CHUNK, plan.n_q)
    shifted = plan.relative and plan.ahead == 0 and not plan.per_row
    fused = q.device.type == "cpu" and not dropout and q.dtype in (torch.float32, torch.float64, torch.bfloat16)
    ref = plan.cached(("reference", size, fused), lambda: _reference(plan, size, fused)) if shifted else None
    needs_grad = torch.is_grad_enabled() and plan.score_mod is not None and (
        ref.requires_grad if ref is not None else _score_needs_grad(plan))
    if fused and (ref is not None or not needs_grad):  # one autograd node on the CPU flash kernels
        if k.shape[1] != q.shape[1]:
            k, v = k.repeat_interleave(q.shape[1] // k.shape[1], 1), v.repeat_interleave(q.shape[1] // v.shape[1], 1)
        ref = ref.to(q.dtype) if ref is not None else None
        chunks = _chunks(plan, size, shifted, q.dtype)
        return ChunkedAttention.apply(q.contiguous(), k.contiguous(), v.contiguous(), ref, chunks, scale)
    outs = []
    for c in _chunks(plan, size, shifted, q.dtype):
        def one(qc, kc, vc, ref, c=c):
            return _sdpa(qc, kc, vc, c.mask(ref), scale, dropout)

        args = (q[:, :, c.q0:c.q1], k[:, :, c.lo:c.hi], v[:, :, c.lo:c.hi], ref)
        outs.append(checkpoint(one, *args, use_reentrant=False) if needs_grad else one(*args))
    return torch.cat(outs, dim=2)  # [b, h, t, hd]


def _score_needs_grad(plan: MaskPlan) -> bool:
    return bool(plan.dense(plan.n_q - 1, plan.n_q, plan.n_k - 1, plan.n_k, float_mask=True).requires_grad)


_compiled_flex = None


def flex(q, k, v, plan: MaskPlan, scale, dropout):
    """FlexAttention: a BlockMask (only the blocks the mask allows are computed) and the score_mod."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    if dropout:
        raise ValueError("flex: FlexAttention has no attention dropout")
    block_mask = None
    if plan.parts:
        heads = plan.n_heads if plan.uses_heads else None

        def mask_mod(b, h, q_idx, kv_idx):  # a plain function, as create_block_mask wants
            return plan.mask_mod(b, h, q_idx, kv_idx)

        block_mask = plan.cached("flex", lambda: create_block_mask(
            mask_mod, plan.batch, heads, plan.n_q, plan.n_k, device=q.device))
    run = flex_attention
    if q.device.type == "cpu" and not torch.is_grad_enabled():  # leaves that require grad: flex refuses on CPU
        q, k, v = q.detach(), k.detach(), v.detach()
    if q.device.type == "cuda":
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention, dynamic=False)
        run = _compiled_flex
    return run(q, k, v, score_mod=plan.score_mod, block_mask=block_mask, scale=scale,
               enable_gqa=k.shape[1] != q.shape[1])
