"""Logit soft-capping (Gemma 2): ``cap * tanh(x / cap)`` on attention scores and on the final logits.

Attention: a soft cap is a FlexAttention ``score_mod`` that is not additive. The kernels of
``blocks/kernels.py`` evaluate a plan's score_mod once as a bias (``score_mod(0, ...)``) and add it,
which is right for ALiBi or T5's table but not for a cap. So an attention layer with ``softcap`` calls
``attend_with_score_mods`` here: the same MaskPlan (masks, window, positional bias), the score_mods
applied to the real scores q k^T * scale, in query chunks of ``kernels.CHUNK`` (recomputed in backward
when gradients are needed, so memory stays O(chunk x keys)). Order: cap first, then the positional
bias and the masks (Gemma 2: cap, then mask).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from . import kernels
from .mask_plan import MaskPlan
from .masks import batch_index

ScoreMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def softcap(x: torch.Tensor, cap: float) -> torch.Tensor:
    """cap * tanh(x / cap): x where |x| << cap, never beyond +-cap."""
    return cap * torch.tanh(x / cap)


def softcap_mod(cap: float) -> ScoreMod:
    """The soft cap as a FlexAttention score_mod."""
    def mod(score, b, h, q_idx, kv_idx):
        return softcap(score, cap)

    return mod


def _chunk(q, k, v, plan: MaskPlan, mods, scale, dropout, q0, q1):
    """Output and weights of queries [q0, q1): softmax(mods(q k^T * scale) + plan bias, masked) v."""
    scores = (q @ k.transpose(-2, -1)) * scale  # [b, h, c, s]
    device = q.device
    q_idx = torch.arange(q0, q1, device=device)[:, None]
    kv_idx = torch.arange(plan.n_k, device=device)[None, :]
    b_idx = batch_index(plan.info).view(-1, 1, 1, 1) if plan.per_row else torch.zeros((), dtype=torch.long,
                                                                                       device=device)
    h_idx = torch.arange(q.shape[1], device=device).view(-1, 1, 1)
    for mod in mods:
        scores = mod(scores, b_idx, h_idx, q_idx, kv_idx)
    bias = plan.dense(q0, q1, 0, plan.n_k, float_mask=True)  # [b|1, h|1, c, s]: positional bias, -inf hidden
    if bias is not None:
        scores = scores + bias.to(scores.dtype)
    weights = scores.float().softmax(dim=-1).nan_to_num(0.0).to(q.dtype)  # a query that sees nothing: zeros
    return F.dropout(weights, dropout, training=dropout > 0) @ v, weights


def attend_with_score_mods(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: MaskPlan, scale: float | None,
                           mods: list[ScoreMod], dropout: float = 0.0,
                           need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention of q [b, h, t, hd] over k, v [b, kv, s, hd] with score_mods applied to the real scores:
    ([b, h, t, hd], weights [b, h, t, s] or None)."""
    scale = scale if scale is not None else q.shape[-1] ** -0.5
    if k.shape[1] != q.shape[1]:
        repeat = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)  # [b, h, s, hd]
    size = plan.n_q if need_weights else min(kernels.CHUNK, plan.n_q)
    grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    outs, all_weights = [], []
    for q0 in range(0, plan.n_q, size):
        q1 = min(q0 + size, plan.n_q)
        args = (q[:, :, q0:q1], k, v, plan, mods, scale, dropout, q0, q1)
        if grad and not need_weights and size < plan.n_q and not dropout:
            y, w = checkpoint(_chunk, *args, use_reentrant=False)
        else:
            y, w = _chunk(*args)
        outs.append(y)
        all_weights.append(w)
    out = torch.cat(outs, dim=2)  # [b, h, t, hd]
    return out, (torch.cat(all_weights, dim=2) if need_weights else None)
