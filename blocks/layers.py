"""A stack of layers (any registered layer kind, ``blocks/layer_kinds.py``) with its positional
module, masks and final norm.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .context import AttentionContext
from .masks import Mask
from .positional import Positional


def document_positions(documents: torch.Tensor) -> torch.Tensor:
    """[b, t] positions that restart at 0 wherever the document id changes along a row."""
    t = documents.shape[1]
    index = torch.arange(t, device=documents.device).expand_as(documents)
    starts = torch.ones_like(documents, dtype=torch.bool)
    starts[:, 1:] = documents[:, 1:] != documents[:, :-1]
    first = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - first


def context_for(ctx: AttentionContext, positional: Positional) -> AttentionContext:
    """``ctx`` with another positional module's rotation and score bias (a layer's own: a rope base per
    layer group); same positions, masks and padding. Built once per forward and positional."""
    siblings = ctx.__dict__.setdefault("_siblings", {})
    if id(positional) not in siblings:
        info = ctx.info
        restarted = ctx.positions is not info.q_pos  # packed documents: positions restart
        siblings[id(positional)] = AttentionContext(
            positional, ctx.masks, info.q_pos, info.k_pos, info.key_padding, info.prefix_len, info.documents,
            n_heads=ctx.n_heads, positions=ctx.positions if restarted else None)
    return siblings[id(positional)]


class Stack(nn.Module):
    """Layers sharing one positional module and one set of masks, then an optional final norm.

    ``layer_positionals`` (one entry per layer, None for the stack's): a layer's own positional module,
    used in its self-attention in place of the stack's (which alone adds to the embeddings); equal
    ones are one module, shared."""

    def __init__(self, layers: list[nn.Module], positional: Positional, masks: list[Mask],
                 final_norm: nn.Module | None, n_heads: int | None = None,
                 layer_positionals: list[Positional | None] | None = None):
        super().__init__()
        self.n_heads = n_heads
        self.positional = positional
        self.masks = nn.ModuleList(masks)
        self.layers = nn.ModuleList(layers)
        self.final_norm = final_norm
        self.activation_checkpointing = False
        distinct: list[Positional] = []
        for p in layer_positionals or []:
            if p is not None and not any(p is d for d in distinct):
                distinct.append(p)
        self.layer_positionals = nn.ModuleList(distinct)
        self.positional_index = [None if p is None else next(i for i, d in enumerate(distinct) if d is p)
                                 for p in (layer_positionals or [None] * len(layers))]

    def context(self, t: int, offset: int, device: torch.device, key_padding: torch.Tensor | None,
                prefix_len: torch.Tensor | None = None, documents: torch.Tensor | None = None) -> AttentionContext:
        """``documents`` [b, t]: packed document ids (nondecreasing along a row); attention stays within a
        document and positions restart at each one (``ctx.positions``)."""
        q_pos = torch.arange(offset, offset + t, device=device)
        k_pos = torch.arange(0, offset + t, device=device) if offset else q_pos
        positions = document_positions(documents) if documents is not None else None
        return AttentionContext(self.positional, list(self.masks), q_pos, k_pos, key_padding, prefix_len,
                                documents, n_heads=self.n_heads, positions=positions)

    def forward(
        self,
        x: torch.Tensor,
        ctx: AttentionContext,
        memory: torch.Tensor | None = None,
        memory_ctx: AttentionContext | None = None,
        cache: list | None = None,
        weights: list | None = None,
    ) -> torch.Tensor:
        """x [b, t, d] (embedded) -> hidden states [b, t, d]."""
        contexts = ctx
        for i, layer in enumerate(self.layers):
            own = self.positional_index[i] if i < len(self.positional_index) else None
            ctx = contexts if own is None else context_for(contexts, self.layer_positionals[own])
            if self.activation_checkpointing and self.training and cache is None and weights is None:
                x = checkpoint(layer, x, ctx, memory, memory_ctx, use_reentrant=False)
            else:
                x = layer(x, ctx, memory, memory_ctx, cache[i] if cache is not None else None, weights)
        return self.final_norm(x) if self.final_norm is not None else x
