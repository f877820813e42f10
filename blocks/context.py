"""AttentionContext: what every attention layer of one stack shares during one forward pass.

The stack builds it once from its positional module and masks; attention layers call
``rotate`` and ``bias`` on it. Masks are combined once per distinct window and cached.
"""

from __future__ import annotations

from typing import Any

import torch

from .masks import Mask, MaskInfo, causal_mask, window_mask
from .positional import Positional


class AttentionContext:
    """Positions, masks and positional state for one forward pass of one stack."""

    def __init__(
        self,
        positional: Positional | None,
        masks: list[Mask],
        q_pos: torch.Tensor,
        k_pos: torch.Tensor,
        key_padding: torch.Tensor | None = None,
        prefix_len: torch.Tensor | None = None,
    ):
        self.positional = positional
        self.masks = masks
        self.info = MaskInfo(q_pos, k_pos, key_padding, prefix_len)
        self.rotates = positional is not None and positional.rotates
        self.state: Any = positional.prepare(q_pos, k_pos) if positional is not None else None
        self._bias: dict[int | None, tuple[torch.Tensor | None, bool]] = {}

    def rotate(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.rotates:
            return q, k
        return self.positional.rotate(q, k, self.state)

    def bias(self, window: int | None = None) -> tuple[torch.Tensor | None, bool]:
        """(attn_mask, is_causal) for SDPA: a bool mask, a float bias, or the causal fast path."""
        if window not in self._bias:
            self._bias[window] = self._combine(window)
        return self._bias[window]

    def _combine(self, window: int | None) -> tuple[torch.Tensor | None, bool]:
        info = self.info
        n_q, n_k = info.q_pos.shape[0], info.k_pos.shape[0]
        causal = any(m.causal for m in self.masks)
        parts = [t for m in self.masks if not m.causal and (t := m(info)) is not None]
        if info.key_padding is not None and not any(type(m).__name__ == "Padding" for m in self.masks):
            parts.append(info.key_padding[:, None, None, :])  # [b, 1, 1, k]
        score = self.positional.score_bias(self.state) if self.positional is not None and self.positional.biases else None
        if not parts and window is None and score is None:
            if causal and n_q == n_k:
                return None, True  # SDPA's is_causal fast path
            if not causal or n_q == 1:
                return None, False  # nothing is hidden (one new query sees the whole cache)
        if causal:
            parts.append(causal_mask(info.q_pos, info.k_pos))
        if window is not None:
            parts.append(window_mask(info.q_pos, info.k_pos, window))
        mask = None
        for part in parts:
            mask = part if mask is None else mask & part
        if mask is not None and info.key_padding is not None:
            mask = mask | ~mask.any(dim=-1, keepdim=True)  # a row with no visible key would give NaN
        if score is None:
            return mask, False
        if mask is None:
            return score, False
        return score.masked_fill(~mask, float("-inf")), False
