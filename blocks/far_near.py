"""Causal attention with a bias that is constant per head beyond a distance (T5's last bucket).

The positional declares ``far_bias() -> (D, bias [h])``: keys at least D positions back all get
bias[h]. A query's keys split in two parts whose softmax pieces merge by their logsumexps:

- far keys (j <= i - D): scores q k^T * scale + bias[h]. The constant leaves the softmax within
  the part unchanged, so SDPA's causal flash kernel computes it on shifted views
  (q[D:] against k[:T - D], ``is_causal`` is top-left aligned: key j <= i - D), and bias[h] is
  added to its logsumexp;
- near keys (i - D < j <= i): a band of width D, block-local: queries in blocks of W >= D see
  their own and the previous key block with one shared [h, W, 2W] bias (the band is shift
  invariant; block 0 has no previous block and takes the bias's right half);
- out = sum over parts of out_p * exp(lse_p - lse), lse = logaddexp of the parts.

Backward (the identity of ring attention): each part's flash backward, given the *merged* output
and logsumexp, yields its share of dq, dk, dv. The bias's gradient is the sum of dS over each
distance: inside the band dS is recomputed block by block (T x 2W, not T^2); beyond it every key
has bias[h], and since each row of dS sums to zero (no dropout), far keys' dS sums to minus the
band's. Memory is SDPA's: q, k, v, the output and the logsumexp. CPU only (ATen's CPU flash ops).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .mask_plan import MaskPlan

_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
_flash_backward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward

ALIGN = 32  # the band's block width W is the distance rounded up to a multiple of this
DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def _width(distance: int, n: int) -> int:
    """The block width: a power of two >= distance that divides n (no padding copies), else the
    distance rounded up to ALIGN."""
    w = max(distance, 1)
    p = 1 << (w - 1).bit_length()
    return p if n % p == 0 and p < 2 * w else -(-w // ALIGN) * ALIGN


def applies(plan: MaskPlan, dtype: torch.dtype) -> bool:
    """Exactly causal, as many queries as keys, a declared far_bias and room for two band blocks."""
    if plan.score_mod is None or not plan.causal_mask or plan.n_q != plan.n_k or plan.per_row:
        return False
    if not plan.relative or dtype not in DTYPES:
        return False
    far = plan.far_bias()
    return far is not None and 2 * _width(far[0], plan.n_q) <= plan.n_q


def _band(plan: MaskPlan, w: int, distance: int, heads: tuple[int, int] | None = None) -> torch.Tensor:
    """[1, h|1, W, 2W] float: the bias of a query block over the previous and its own key block,
    -inf outside the band 0 <= i - j < distance (``heads``: only heads [h0, h1))."""
    device = plan.info.q_pos.device
    q_idx = torch.arange(w, 2 * w, device=device)[:, None]
    kv_idx = torch.arange(2 * w, device=device)[None, :]
    which = torch.arange(*heads, device=device) if heads is not None else None
    return plan.evaluate(q_idx, kv_idx, valid=(q_idx - kv_idx) < distance, float_mask=True, heads=which)


def band_only(q, k, v, plan: MaskPlan, scale, distance: int, heads: tuple[int, int]) -> torch.Tensor:
    """Heads [h0, h1) of q, k, v (as many heads as q) attending only to keys less than ``distance``
    back (the caller knows the others' weights are negligible), with the plan's exact bias."""
    w = _width(distance, plan.n_q)
    band = plan.cached(("band", w, distance, heads), lambda: _band(plan, w, distance, heads))
    if scale is None:
        scale = 1 / math.sqrt(q.shape[-1])
    return FarNear.apply(q.contiguous(), k.contiguous(), v.contiguous(), band, None, distance, scale)


def band_fits(plan: MaskPlan, distance: int) -> bool:
    return 2 * _width(distance, plan.n_q) <= plan.n_q

def far_near(q, k, v, plan: MaskPlan, scale, dropout):
    if dropout:
        raise ValueError("far_near: no attention dropout (the bias gradient needs rows of dS summing to 0)")
    distance, far = plan.far_bias()
    distance = max(distance, 1)
    w = _width(distance, plan.n_q)
    band = plan.cached(("far_near", w), lambda: _band(plan, w, distance))
    if k.shape[1] != q.shape[1]:
        k, v = k.repeat_interleave(q.shape[1] // k.shape[1], 1), v.repeat_interleave(q.shape[1] // v.shape[1], 1)
    if scale is None:
        scale = 1 / math.sqrt(q.shape[-1])
    return FarNear.apply(q.contiguous(), k.contiguous(), v.contiguous(), band, far, distance, scale)


def _blocks(x: torch.Tensor, nb: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x [b, h, nb*W, d] contiguous -> (blocks [b*h, nb, W, d], pairs [b*h, nb - 1, 2W, d]: block a-1
    and a, an overlapping view)."""
    b, h, n, d = x.shape
    flat = x.view(b * h, n, d)
    return flat.view(b * h, nb, w, d), flat.as_strided((b * h, nb - 1, 2 * w, d), (n * d, w * d, d, 1))


def _pad(x: torch.Tensor, n: int) -> torch.Tensor:
    extra = n - x.shape[2]
    if not extra:
        return x.contiguous()
    return F.pad(x, (0, 0, 0, extra)) if x.dim() == 4 else F.pad(x, (0, extra))


def _mask(band: torch.Tensor, b: int, dtype: torch.dtype) -> torch.Tensor:
    """[b*h | 1, 1, W, 2W] for a batch of [b*h, blocks, W, 2W] scores."""
    h = band.shape[1]
    return band.to(dtype).expand(b, h, *band.shape[2:]).reshape(b * h, 1, *band.shape[2:]) if h > 1 \
        else band.to(dtype).reshape(1, 1, *band.shape[2:])


class FarNear(torch.autograd.Function):
    """softmax(q k^T * scale + bias) v under the causal mask, bias = band near the diagonal, far[h] beyond."""

    @staticmethod
    def forward(ctx, q, k, v, band, far, distance: int, scale: float):
        b, h, n, d = q.shape
        w = band.shape[-2]
        nb = -(-n // w)
        mask = _mask(band, b, q.dtype)
        qb, _ = _blocks(_pad(q, nb * w), nb, w)
        kb, kpairs = _blocks(_pad(k, nb * w), nb, w)
        vb, vpairs = _blocks(_pad(v, nb * w), nb, w)
        o0, l0 = _flash(qb[:, :1], kb[:, :1], vb[:, :1], 0.0, False, attn_mask=mask[..., w:], scale=scale)
        o1, l1 = _flash(qb[:, 1:], kpairs, vpairs, 0.0, False, attn_mask=mask, scale=scale)
        lse_near = torch.cat([l0, l1], dim=1).view(b, h, nb * w)[..., :n]  # [b, h, t]
        out_near = torch.cat([o0, o1], dim=1).view(b, h, nb * w, d)[:, :, :n]
        if far is None:  # the band alone (far keys are negligible)
            out, lse = out_near.contiguous(), lse_near.contiguous()
        else:
            o_far, l_far = _flash(q[:, :, distance:], k[:, :, :n - distance], v[:, :, :n - distance], 0.0, True,
                                  scale=scale)
            l_far = l_far + far.detach().to(l_far.dtype).view(1, h, 1)  # [b, h, t - D]
            lse = lse_near.clone()
            lse[..., distance:] = torch.logaddexp(lse_near[..., distance:], l_far)
            out = out_near * (lse_near - lse).exp().unsqueeze(-1).to(q.dtype)
            out[:, :, distance:] += o_far * (l_far - lse[..., distance:]).exp().unsqueeze(-1).to(q.dtype)
        ctx.save_for_backward(q, k, v, band, far, out, lse)
        ctx.distance, ctx.scale = distance, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, band, far, out, lse = ctx.saved_tensors
        distance, scale = ctx.distance, ctx.scale
        b, h, n, d = q.shape
        w = band.shape[-2]
        nb = -(-n // w)
        go = grad_out.contiguous()
        # the band: block 0 over its own block, blocks 1.. over the previous and their own
        mask = _mask(band, b, q.dtype)
        pads = [_blocks(_pad(x, nb * w), nb, w) for x in (q, k, v, go, out)]
        (qb, _), (kb, kpairs), (vb, vpairs), (gob, _), (ob, _) = pads
        lb = _pad(lse, nb * w).view(b * h, nb, w)
        g0 = _flash_backward(gob[:, :1], qb[:, :1], kb[:, :1], vb[:, :1], ob[:, :1], lb[:, :1].contiguous(),
                             0.0, False, attn_mask=mask[..., w:], scale=scale)
        g1 = _flash_backward(gob[:, 1:], qb[:, 1:], kpairs, vpairs, ob[:, 1:], lb[:, 1:].contiguous(),
                             0.0, False, attn_mask=mask, scale=scale)
        grads = []
        for i, first, rest in ((0, g0[0], g1[0]), (1, g0[1], g1[1]), (2, g0[2], g1[2])):
            full = torch.empty(b * h, nb, w, d, dtype=q.dtype, device=q.device)  # [b*h, nb, W, hd]
            full[:, :1] = first
            if i == 0:
                full[:, 1:] = rest
            else:  # pairs: the previous block's keys, then the block's own
                full[:, 1:] = rest[:, :, w:]
                full[:, :-1] += rest[:, :, :w]
            grads.append(full.view(b, h, nb * w, d)[:, :, :n])
        dq, dk, dv = grads
        if far is not None:  # far keys: their flash backward with the merged output and logsumexp, less the bias
            far_lse = (lse[..., distance:] - far.detach().to(lse.dtype).view(1, h, 1)).contiguous()
            gq, gk, gv = _flash_backward(go[:, :, distance:], q[:, :, distance:], k[:, :, :n - distance],
                                         v[:, :, :n - distance], out[:, :, distance:], far_lse, 0.0, True, scale=scale)
            dq[:, :, distance:] += gq
            dk[:, :, :n - distance] += gk
            dv[:, :, :n - distance] += gv
        dband = dfar = None
        if ctx.needs_input_grad[3] or ctx.needs_input_grad[4]:
            per_head = _band_grad(qb, kb, kpairs, vb, vpairs, gob, ob, lb, band, b, scale)  # [1, h, W, 2W]
            if far is not None:  # rows of dS sum to 0: the far keys' is minus the band's
                dfar = -per_head.sum((0, 2, 3)).to(far.dtype)
            dband = (per_head if band.shape[1] > 1 else per_head.sum(1, keepdim=True)).to(band.dtype)
        return dq, dk, dv, dband, dfar, None, None


def _band_grad(qb, kb, kpairs, vb, vpairs, gob, ob, lb, band, b, scale) -> torch.Tensor:
    """dS summed over rows, blocks and the batch, per head: [1, h, W, 2W] (float32 at least)."""
    w = band.shape[-2]
    acc = torch.float64 if band.dtype == torch.float64 else torch.float32
    bias = band.to(acc)
    bh = qb.shape[0]
    bias = bias.expand(b, -1, -1, -1) if bias.shape[1] > 1 else bias
    bias = bias.reshape(-1, 1, w, 2 * w)  # [b*h | 1, 1, W, 2W]
    total = torch.zeros(bh, w, 2 * w, dtype=acc, device=qb.device)
    for sl, keys, values, m in ((slice(0, 1), kb[:, :1], vb[:, :1], bias[..., w:]),
                                (slice(1, None), kpairs, vpairs, bias)):
        qs, go, o = qb[:, sl].to(acc), gob[:, sl].to(acc), ob[:, sl].to(acc)
        p = (qs @ keys.to(acc).transpose(-2, -1)).mul_(scale).add_(m).sub_(lb[:, sl, :, None].to(acc)).exp_()
        ds = (go @ values.to(acc).transpose(-2, -1)).sub_((go * o).sum(-1, keepdim=True)).mul_(p)
        total[..., 2 * w - ds.shape[-1]:] += ds.sum(1)  # block 0 covers the right half only
    return total.view(b, -1, w, 2 * w).sum(0, keepdim=True)  # [1, h, W, 2W]
