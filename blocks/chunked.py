"""Query-chunked attention on the CPU flash kernel, as one autograd node.

Each chunk of queries attends to its key range with its own additive mask (a slice of one
reference block, or built on the fly); forward and backward call ATen's CPU flash kernels per
chunk and write the gradients of q, k, v into whole tensors, so that no chunk leaves a [t, s]
tensor behind (memory O(chunk x s)) and slicing costs no per-chunk copies in backward. When the
reference needs a gradient (a learned bias such as T5's table), backward recomputes each chunk's
probabilities, P = exp(S - logsumexp), and adds dS = P * (dP - rowsum(dO * O)) into the
reference's gradient; autograd carries it on to the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
_flash_backward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward


@dataclass
class Chunk:
    q0: int
    q1: int
    lo: int  # keys [lo, hi)
    hi: int
    mask: Callable[[torch.Tensor | None], torch.Tensor | None]  # reference (or None) -> [b|1, h|1, q, k] float


class ChunkedAttention(torch.autograd.Function):
    """out = softmax(q k^T * scale + mask_c) v per chunk c; ``ref``, when given, gets a gradient."""

    @staticmethod
    def forward(ctx, q, k, v, ref, chunks: list[Chunk], scale: float):
        outs, lses = [], []
        for c in chunks:
            o, lse = _flash(q[:, :, c.q0:c.q1], k[:, :, c.lo:c.hi], v[:, :, c.lo:c.hi], 0.0, False,
                            attn_mask=c.mask(ref), scale=scale)
            outs.append(o)
            lses.append(lse)
        out = torch.cat(outs, dim=2)  # [b, h, t, hd]
        ctx.save_for_backward(q, k, v, ref, out, *lses)
        ctx.chunks, ctx.scale = chunks, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, ref, out, *lses = ctx.saved_tensors
        chunks, scale = ctx.chunks, ctx.scale
        grad_out = grad_out.contiguous()
        dq, dk, dv = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
        dref = torch.zeros_like(ref) if ref is not None and ctx.needs_input_grad[3] else None
        for c, lse in zip(chunks, lses):
            qc, kc, vc = q[:, :, c.q0:c.q1], k[:, :, c.lo:c.hi], v[:, :, c.lo:c.hi]
            go, oc, mask = grad_out[:, :, c.q0:c.q1], out[:, :, c.q0:c.q1], c.mask(ref)
            gq, gk, gv = _flash_backward(go, qc, kc, vc, oc, lse, 0.0, False, attn_mask=mask, scale=scale)
            dq[:, :, c.q0:c.q1] = gq
            dk[:, :, c.lo:c.hi] += gk
            dv[:, :, c.lo:c.hi] += gv
            if dref is not None:
                factor = scale if scale is not None else 1 / math.sqrt(q.shape[-1])
                p = (qc @ kc.transpose(-2, -1)).mul_(factor).add_(mask).sub_(lse[..., None]).exp_()  # [b, h, q, k]
                ds = (go @ vc.transpose(-2, -1)).sub_((go * oc).sum(-1, keepdim=True)).mul_(p)  # in place: 2 temporaries
                c.mask(dref).add_(ds.sum(0, keepdim=True) if dref.shape[0] == 1 else ds)
        return dq, dk, dv, dref, None, None
