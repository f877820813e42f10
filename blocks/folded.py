"""A per-key score bias folded into queries and keys, so that SDPA's fast paths serve it.

Where no allowed key lies after its query, some biases are a bias per key plus a term of the
query alone (ALiBi: -s*(i - j) = s*j - s*i, declared by the positional as ``key_bias``). Softmax
ignores the query's term, and the key's term is one more component of the dot product:

    q' = [q, 1, 0...],  k' = [k, key_bias / scale, 0...],  v' = [v, 0...]
    softmax(q' k'^T * scale) v' = softmax(q k^T * scale + key_bias) [v, 0...]

so the masks alone remain, which SDPA's ``is_causal`` flash path (or any other kernel) computes.
The cost is one or a few more head components. The key bias grows with the length (ALiBi: up to
slope x T), and the dot product rounds at that magnitude: ``precise_enough`` refuses a dtype whose
rounding there exceeds FOLD_TOL (float32 to T ~ 8k at ALiBi's steepest slope; never bf16).
"""

from __future__ import annotations

import math

import torch

FOLD_TOL = 1e-3  # largest rounding of a score (|key bias| x the dtype's epsilon) the fold may add


def precise_enough(key_bias: torch.Tensor, dtype: torch.dtype) -> bool:
    if not dtype.is_floating_point:
        return False
    span = float(key_bias.abs().max()) if key_bias.numel() else 0.0
    return span * torch.finfo(dtype).eps <= FOLD_TOL


def fold(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_bias: torch.Tensor,
         scale: float | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """(q', k', v', scale): attention over them, cut to v's head_dim, is attention with ``key_bias``."""
    b, h, t, d = q.shape
    s = k.shape[2]
    scale = scale if scale is not None else 1 / math.sqrt(d)
    if k.shape[1] != h:  # the bias is per query head: grouped keys are repeated
        k, v = k.repeat_interleave(h // k.shape[1], dim=1), v.repeat_interleave(h // v.shape[1], dim=1)
    extra = 1 if q.device.type == "cpu" else 8 - d % 8  # CUDA's flash kernels want head_dim % 8 == 0
    pad = extra - 1
    kb = (key_bias / scale).to(q.dtype).expand(b, h, s).unsqueeze(-1)  # [b, h, s, 1]
    q2 = torch.cat([q, q.new_ones(b, h, t, 1)] + ([q.new_zeros(b, h, t, pad)] if pad else []), dim=-1)
    k2 = torch.cat([k, kb] + ([k.new_zeros(b, h, s, pad)] if pad else []), dim=-1)
    v2 = torch.nn.functional.pad(v, (0, extra))
    return q2, k2, v2, scale  # [b, h, t | s, hd + extra]


def cutoffs(key_bias: torch.Tensor, q: torch.Tensor, k: torch.Tensor, scale: float | None) -> list[int] | None:
    """Per head, a distance beyond which every causal key's weight is negligible, or None.

    With the key bias and |q_i . k_j| * scale <= B_h (the largest norms), a key j <= i - D has
    weight below exp(B_h - (kb_i - kb_j)) times the diagonal key's. Where kb_i - kb_j > B_h + C for
    every such pair, its weight is under exp(-C) = eps(dtype) * 2^-8 / T of the row's sum: rounding
    drops it anyway. The kernels then need only a window of D keys per head (ALiBi: D ~ (B + C) /
    slope), and the weights that would fall in float32's denormal range (slow on CPUs) are never
    computed. None when the bias has no decay to exploit (or per-row positions)."""
    if key_bias.dim() != 2:
        return None
    n = key_bias.shape[-1]
    scale = scale if scale is not None else 1 / math.sqrt(q.shape[-1])
    qn = q.detach().norm(dim=-1).amax(dim=(0, 2))  # [h]
    kn = k.detach().norm(dim=-1).amax(dim=(0, 2)).repeat_interleave(q.shape[1] // k.shape[1])  # [h]
    margin = math.log(n / torch.finfo(q.dtype).eps) + 8 * math.log(2)
    need = (2 * scale * qn * kn).to(key_bias.dtype) + margin  # [h]
    kb = key_bias.to(torch.float64)
    best = torch.cummax(kb, dim=-1).values  # [h, s]: the largest bias of keys 0..j
    out = []
    for h in range(kb.shape[0]):  # the least D (binary search: "enough" only grows with D)
        lo, hi = 1, n  # D = n is always enough: no key lies that far back
        while lo < hi:
            mid = (lo + hi) // 2
            if float((kb[h, mid:] - best[h, : n - mid]).amin()) > float(need[h]):
                hi = mid
            else:
                lo = mid + 1
        out.append(lo)
    return out
