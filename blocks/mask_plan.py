"""MaskPlan: one stack's masks, a layer's window and the positional score_mod, composed once per forward.

The plan is a FlexAttention ``mask_mod`` (the AND of every mask's ``allowed``) and ``score_mod``
over query and key *indices*, plus what the masks declare (plain causal, window, how far ahead a
key may be, shift invariance, per-row data). Kernels ask it for what they need: a block mask, a
dense mask, the mask and bias of one query chunk or of a batch of key blocks. Everything it builds
is cached for the forward pass, so all the layers of a stack share it.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch

from .masks import Document, Mask, MaskInfo, Window, batch_index
from .positional import ScoreMod


class KeyPadding(Mask):
    """The call's key padding when no mask of the stack reads it (keys at pads are always hidden)."""

    uses_padding = True

    def allowed(self, b, h, q_idx, kv_idx, info):
        return info.key_padding[b, kv_idx]


class DenseMask(Mask):
    """A mask that only defines the older ``forward(info) -> dense bool tensor``: indexed, not computed."""

    def __init__(self, mask: Mask, info: MaskInfo):
        super().__init__()
        dense = mask(info)
        self.table = dense.reshape((1,) * (4 - dense.dim()) + tuple(dense.shape))  # [b|1, h|1, q, k]
        self.uses_heads = self.table.shape[1] > 1

    def allowed(self, b, h, q_idx, kv_idx, info):
        t = self.table
        return t[b % t.shape[0], h % t.shape[1], q_idx - info.q_pos[0], kv_idx - info.k_pos[0]]


def _tensor_mod(bias: torch.Tensor) -> ScoreMod:
    table = bias.reshape((1,) * (4 - bias.dim()) + tuple(bias.shape))  # [b|1, h|1, q, k]

    def mod(score, b, h, q_idx, kv_idx):
        return score + table[b % table.shape[0], h % table.shape[1], q_idx, kv_idx].to(score.dtype)

    return mod


class MaskPlan:
    """The composed mask and score modification of one attention call site, for one forward pass."""

    def __init__(self, masks: list[Mask], info: MaskInfo, n_heads: int | None, positional: Any = None,
                 state: Any = None, window: int | None = None):
        parts = [m if type(m).allowed is not Mask.allowed else DenseMask(m, info) for m in masks if m.active(info)]
        if info.key_padding is not None and not any(m.uses_padding for m in parts):
            parts.append(KeyPadding())
        if info.documents is not None and not any(m.uses_documents for m in parts):
            parts.append(Document())  # packed documents: attention never crosses a boundary
        if window is not None:
            parts.append(Window(window))
        self.parts, self.info = parts, info
        self.n_q, self.n_k = info.q_pos.shape[0], info.k_pos.shape[0]
        self.offset = self.n_k - self.n_q  # row position of query index 0 (a KV cache's length)
        self.n_heads = n_heads
        self.score_mod: ScoreMod | None = None
        self._positional = None  # the positional whose score_mod this is (for its key_bias, far_bias)
        relative_scores = True
        if positional is not None and positional.biases:
            self.score_mod = positional.score_mod(state)
            if self.score_mod is None:
                self.score_mod = _tensor_mod(positional.score_bias(state))
                relative_scores = False
            else:
                relative_scores = positional.relative_scores
                self._positional, self._state = positional, state
        self.causal_mask = bool(parts) and all(m.causal for m in parts)  # the masks are exactly causal
        self.causal = self.causal_mask and self.score_mod is None  # SDPA is_causal
        self.unmasked = not parts and self.score_mod is None
        self.ahead = _least([m.max_ahead for m in parts if m.max_ahead is not None])
        self.behind = _least([m.window - 1 for m in parts if m.window is not None])
        self.relative = all(m.relative for m in parts) and relative_scores  # shift-invariant along diagonals
        self.per_row = any(m.uses_padding or m.uses_documents for m in parts) or info.prefix_len is not None
        self.uses_heads = any(getattr(m, "uses_heads", False) for m in parts)
        self._cache: dict[Any, Any] = {}

    def cached(self, key: Any, build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def key_bias(self) -> torch.Tensor | None:
        """The score_mod as a bias per key, [h, k] or [b, h, k] float32 (declared by the positional,
        valid because no allowed key lies after its query), centred per row; None if it has no such form."""
        if self._positional is None or self.ahead != 0:
            return None

        def build():
            bias = self._positional.key_bias(self._state)
            if bias is None:
                return None
            top, bottom = bias.amax(-1, keepdim=True), bias.amin(-1, keepdim=True)
            return bias - (top + bottom) / 2  # a constant per row: softmax ignores it; halves the magnitude

        return self.cached("key_bias", build)

    def far_bias(self) -> tuple[int, torch.Tensor] | None:
        """(distance, bias [h]): beyond ``distance`` keys back the score_mod adds a constant per head."""
        if self._positional is None:
            return None
        return self.cached("far_bias", lambda: self._positional.far_bias(self._state))

    def unbiased(self) -> "MaskPlan":
        """This plan without its score_mod (the masks alone), for kernels that apply the bias themselves."""
        def build():
            plain = copy.copy(self)
            plain.score_mod, plain._positional, plain._cache = None, None, {}
            plain.causal, plain.unmasked = self.causal_mask, not self.parts
            plain.relative = all(m.relative for m in self.parts)
            return plain

        return self.cached("unbiased", build)

    @property
    def batch(self) -> int | None:
        """Rows when the mask differs per batch row, else None (FlexAttention's B=None)."""
        return batch_index(self.info).shape[0] if self.per_row else None

    def mask_mod(self, b, h, q_idx, kv_idx):
        """FlexAttention's mask_mod over indices: the AND of every part's ``allowed`` on row positions."""
        q, k = self.info.q_pos[q_idx], self.info.k_pos[kv_idx]
        out = None
        for m in self.parts:
            a = m.allowed(b, h, q, k, self.info)
            out = a if out is None else out & a
        return out

    def key_range(self, q0: int, q1: int) -> tuple[int, int]:
        """Keys that queries [q0, q1) may see at all, from the declared window and max_ahead."""
        lo = max(0, q0 + self.offset - self.behind) if self.behind is not None else 0
        hi = min(self.n_k, q1 + self.offset + self.ahead) if self.ahead is not None else self.n_k
        return lo, max(hi, lo)

    def evaluate(self, q_idx: torch.Tensor, kv_idx: torch.Tensor, valid: torch.Tensor | None = None,
                 float_mask: bool = False, heads: torch.Tensor | None = None) -> torch.Tensor | None:
        """The mask (bool) or mask + bias (float, -inf where hidden) on broadcast index grids, with
        leading [b, h] dimensions (1 where nothing depends on them; ``heads``: only these heads);
        None when nothing is hidden."""
        device = q_idx.device
        b = batch_index(self.info) if self.per_row else torch.zeros((), dtype=torch.long, device=device)
        h = heads if heads is not None else torch.arange(self.n_heads or 1, device=device)
        h = h.view(-1, *([1] * q_idx.dim()))
        if b.dim():
            b = b.view(-1, *([1] * (q_idx.dim() + 1)))
        allowed = self.mask_mod(b, h, q_idx, kv_idx) if self.parts else None
        if valid is not None:
            allowed = valid if allowed is None else allowed & valid
        if self.score_mod is None and not float_mask:
            return None if allowed is None else _lead(allowed, q_idx.dim())
        zero = torch.zeros((), device=device)
        bias = self.score_mod(zero, b, h, q_idx, kv_idx) if self.score_mod is not None else zero
        shapes = [bias.shape, q_idx.shape, kv_idx.shape] + ([allowed.shape] if allowed is not None else [])
        bias = bias.expand(torch.broadcast_shapes(*shapes))
        if allowed is not None:
            bias = bias.masked_fill(~allowed, float("-inf"))
        return _lead(bias, q_idx.dim())

    def dense(self, q0: int, q1: int, k0: int, k1: int, float_mask: bool = False) -> torch.Tensor | None:
        """[b|1, h|1, q1 - q0, k1 - k0]: the mask (bool) or bias (float) of one rectangle."""
        device = self.info.q_pos.device
        q_idx = torch.arange(q0, q1, device=device)[:, None]
        kv_idx = torch.arange(k0, k1, device=device)[None, :]
        return self.evaluate(q_idx, kv_idx, float_mask=float_mask)


def _least(values: list[int]) -> int | None:
    return min(values) if values else None  # (no min(default=): torch.compile breaks its graph there)


def _lead(t: torch.Tensor, grid_dims: int) -> torch.Tensor:
    """``t`` with exactly two leading dims [b|1, h|1] before the ``grid_dims`` grid dims."""
    while t.dim() < grid_dims + 2:
        t = t.unsqueeze(0)
    return t
