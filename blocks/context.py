"""AttentionContext: what every attention layer of one stack shares during one forward pass.

The stack builds it once from its positional module and masks; attention layers call ``rotate``
and ``attend``. The masks, a layer's window and the positional score_mod are composed once per
distinct window into a MaskPlan (``blocks/mask_plan.py``), which the dispatcher
(``blocks/dispatch.py``) turns into a kernel call; every layer reuses the plan and what it built.
"""

from __future__ import annotations

from typing import Any

import torch

from . import dispatch
from .mask_plan import MaskPlan
from .masks import Mask, MaskInfo
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
        documents: torch.Tensor | None = None,
        n_heads: int | None = None,
        positions: torch.Tensor | None = None,
        query_documents: torch.Tensor | None = None,
    ):
        self.positional = positional
        self.n_heads = n_heads  # for score_mods evaluated outside a layer call (``bias``)
        self.masks = masks
        self.info = MaskInfo(q_pos, k_pos, key_padding, prefix_len, documents, query_documents)
        self.rotates = positional is not None and positional.rotates
        # ``positions`` [b, t]: positions that restart at each packed document (None: the row positions)
        self.positions = q_pos if positions is None else positions
        restart = positions is not None and positional is not None and not positional.relative_scores
        if restart and positional.biases:
            raise ValueError(f"{type(positional).__name__} biases scores by absolute positions; "
                             "packed documents (document_ids) need a distance-only bias (relative_scores)")
        self.state: Any = None
        if positional is not None:
            self.state = positional.prepare(positions, positions) if restart else positional.prepare(q_pos, k_pos)
        self._plans: dict[tuple[int | None, int | None], MaskPlan] = {}

    def rotate(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.rotates:
            return q, k
        return self.positional.rotate(q, k, self.state)

    def plan(self, window: int | None = None, n_heads: int | None = None) -> MaskPlan:
        """The composed masks and score_mod for a layer with this ``window`` (built once, then shared)."""
        key = (window, n_heads := n_heads or self.n_heads)
        if key not in self._plans:
            self._plans[key] = MaskPlan(self.masks, self.info, n_heads, self.positional, self.state, window)
        return self._plans[key]

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int | None = None,
               scale: float | None = None, dropout: float = 0.0,
               need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention of q [b, h, t, hd] over k, v [b, kv, s, hd] under this context's masks and biases,
        by the fastest kernel that computes it: ([b, h, t, hd], weights [b, h, t, s] or None)."""
        return dispatch.attend(q, k, v, self.plan(window, q.shape[1]), scale, dropout, need_weights)

    def bias(self, window: int | None = None) -> tuple[torch.Tensor | None, bool]:
        """(attn_mask, is_causal) for SDPA: the dense mask or bias [b|1, h|1, q, k], or the causal fast
        path. For attention blocks that call SDPA themselves; ``attend`` is faster for everything else."""
        plan = self.plan(window)
        if plan.unmasked or (plan.causal and plan.n_q == 1):
            return None, False
        if plan.causal and plan.n_q == plan.n_k:
            return None, True
        return plan.cached("dense", lambda: plan.dense(0, plan.n_q, 0, plan.n_k)), False
