"""The layer is a registered kind: how one layer combines its sublayers.

A layer kind is built as ``cls(dims, params, parts)``: ``parts`` (``LayerParts``) builds the
blocks the spec names for this layer. It runs ``forward(x, ctx, memory, memory_ctx, cache,
weights)`` and tells the diagram what it holds through ``sublayers()`` and its ``parallel``
class attribute. Registered kinds:

- ``sequential`` (the default): x -> res(x, self_attn) -> [res(x, cross_attn)] -> res(x, ffn), each
  sublayer wrapped by the spec's residual placement (pre, post, sandwich, ...);
- ``parallel`` (GPT-J, GPT-NeoX, Falcon, PaLM): x + attn(norm(x)) + ffn(norm'(x)). With
  ``shared_norm`` one norm feeds both (GPT-J, Falcon-7B), else each branch has its own (NeoX).
  In a decoder with cross-attention, cross-attention is a third branch beside the other two:
  x + self(n(x)) + cross(n(x), memory) + ffn(n(x)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from stackform import registry
from stackform.registry import BlockParams, Dims, register

from .attention import LayerCache
from .context import AttentionContext

ROLE_OF = {"self_attn": "self_attention", "cross_attn": "cross_attention", "ffn": "ffn"}


@dataclass(frozen=True)
class LayerParts:
    """What the builder hands a layer kind: factories of the blocks the spec names for this layer
    (each call builds a new block, told its role and layer index through its Dims)."""

    attention: Callable[[], nn.Module]
    ffn: Callable[[], nn.Module]
    norm: Callable[[], nn.Module]
    residual: Callable[[str | None], nn.Module]  # the spec's residual placement, or the one named
    cross_attention: Callable[[], nn.Module] | None = None  # None: this stack has no cross-attention


@dataclass(frozen=True)
class Sublayer:
    """One sublayer as the diagram draws it. ``norms_at``: "before" (a norm on the branch's input),
    "after" (on its output, before the add), "after_add" (on the stream after the add)."""

    role: str
    block: nn.Module
    norms_at: tuple[str, ...] = ()
    norm: nn.Module | None = None


class SequentialLayer(nn.Module):
    """x -> res(x, self_attn) -> [res(x, cross_attn(memory))] -> res(x, ffn) (the paper's layer)."""

    container = True
    parallel = False
    uses_residual = True

    class Params(BlockParams):
        residual: str | None = Field(None, description="a registered residual placement (pre, post, sandwich, ...); "
                                                       "default: the spec's residual key")

        @field_validator("residual")
        @classmethod
        def _known(cls, name: str | None) -> str | None:
            if name is not None and name not in registry.names("residual"):
                raise ValueError(registry.unknown_message("residual", name, registry.names("residual")))
            return name

    def __init__(self, dims: Dims, params: Params, parts: LayerParts):
        super().__init__()
        self.self_attn, self.self_res = parts.attention(), parts.residual(params.residual)
        self.cross_attn = parts.cross_attention() if parts.cross_attention is not None else None
        self.cross_res = parts.residual(params.residual) if self.cross_attn is not None else None
        self.ffn, self.ffn_res = parts.ffn(), parts.residual(params.residual)

    @classmethod
    def stack_final_norm(cls, params: Params, residual: type) -> bool:
        """Whether a stack of these layers ends with a norm: what its residual placement asks for."""
        if params.residual is not None:
            residual = registry.get("residual", params.residual).cls
        return getattr(residual, "final_norm", True)

    def sublayers(self) -> list[Sublayer]:
        out = []
        for name, res in (("self_attn", self.self_res), ("cross_attn", self.cross_res), ("ffn", self.ffn_res)):
            block = getattr(self, name)
            if block is not None:
                out.append(Sublayer(ROLE_OF[name], block, tuple(getattr(res, "norms_at", ())), getattr(res, "norm", None)))
        return out

    def forward(self, x: torch.Tensor, ctx: AttentionContext, memory: torch.Tensor | None = None,
                memory_ctx: AttentionContext | None = None, cache: tuple[LayerCache, LayerCache] | None = None,
                weights: list | None = None) -> torch.Tensor:
        need = weights is not None

        def self_block(h: torch.Tensor) -> torch.Tensor:
            y, w = self.self_attn(h, ctx, cache=cache[0] if cache else None, need_weights=need)
            if need:
                weights.append(("self", w))
            return y

        x = self.self_res(x, self_block)
        if self.cross_attn is not None:
            def cross_block(h: torch.Tensor) -> torch.Tensor:
                y, w = self.cross_attn(h, memory_ctx, memory=memory, cache=cache[1] if cache else None,
                                       need_weights=need)
                if need:
                    weights.append(("cross", w))
                return y

            x = self.cross_res(x, cross_block)
        return self.ffn_res(x, self.ffn)


class ParallelLayer(nn.Module):
    """x + attn(norm(x)) + ffn(norm(x)) (GPT-J; GPT-NeoX with a norm per branch); cross-attention,
    when the stack has it, is one more branch on the same input."""

    container = True
    parallel = True
    uses_residual = False
    final_norm = True

    class Params(BlockParams):
        shared_norm: bool = Field(True, description="one norm feeds every branch (GPT-J, Falcon); false: one norm "
                                                    "per branch (GPT-NeoX)")

    def __init__(self, dims: Dims, params: Params, parts: LayerParts):
        super().__init__()
        self.p = dims.dropout
        self.shared_norm = params.shared_norm
        self.self_attn = parts.attention()
        self.cross_attn = parts.cross_attention() if parts.cross_attention is not None else None
        self.ffn = parts.ffn()
        if params.shared_norm:
            self.norm = parts.norm()
        else:
            self.attn_norm = parts.norm()
            self.cross_norm = parts.norm() if self.cross_attn is not None else None
            self.ffn_norm = parts.norm()

    def _norm(self, name: str) -> nn.Module:
        return self.norm if self.shared_norm else getattr(self, {"self_attn": "attn_norm", "cross_attn": "cross_norm",
                                                                   "ffn": "ffn_norm"}[name])

    def sublayers(self) -> list[Sublayer]:
        return [Sublayer(ROLE_OF[name], getattr(self, name), ("before",), self._norm(name))
                for name in ("self_attn", "cross_attn", "ffn") if getattr(self, name) is not None]

    def _drop(self, y: torch.Tensor) -> torch.Tensor:
        return F.dropout(y, self.p, self.training) if self.p else y

    def forward(self, x: torch.Tensor, ctx: AttentionContext, memory: torch.Tensor | None = None,
                memory_ctx: AttentionContext | None = None, cache: tuple[LayerCache, LayerCache] | None = None,
                weights: list | None = None) -> torch.Tensor:
        need = weights is not None
        h = self._norm("self_attn")(x)
        y, w = self.self_attn(h, ctx, cache=cache[0] if cache else None, need_weights=need)
        if need:
            weights.append(("self", w))
        out = x + self._drop(y)
        if self.cross_attn is not None:
            hc = h if self.shared_norm else self.cross_norm(x)
            y, w = self.cross_attn(hc, memory_ctx, memory=memory, cache=cache[1] if cache else None, need_weights=need)
            if need:
                weights.append(("cross", w))
            out = out + self._drop(y)
        return out + self._drop(self.ffn(h if self.shared_norm else self.ffn_norm(x)))


register("layer", "sequential")(SequentialLayer)
register("layer", "parallel")(ParallelLayer)


def stack_final_norm(cls: type, params: BlockParams, residual: type) -> bool:
    """Whether a stack of ``cls`` layers ends with a norm: its ``stack_final_norm(params, residual)``
    when it has one, else its ``final_norm`` attribute (default true)."""
    own = getattr(cls, "stack_final_norm", None)
    return own(params, residual) if callable(own) else getattr(cls, "final_norm", True)
