"""The block protocol: what the rest of stackform reads from a block, duck-typed.

A block need not subclass anything. The core calls these free functions, which use the
block's own method when it has one and a default otherwise:

- ``describe(module) -> str``: the label ``inspect`` and the diagram show. Default: the
  registered name and every parameter that differs from its default (``mha window=64``).
- ``cost(module, ctx) -> Cost``: forward FLOPs and activation elements per token, parameters
  and active parameters. Default: 2 FLOPs per weight of every ``nn.Linear`` inside, the inputs
  of those linears as activations (a norm: its input and normalized value), all parameters
  active. A sparse block (mixture of experts) returns its active parameters and FLOPs.
- ``losses(module) -> dict[str, Tensor]``: auxiliary losses of the most recent forward, already
  weighted; the training loop adds them to the loss and logs each under its name. Default: {}.

Capabilities the core reads are class attributes (never inferred from a class or parameter
name): ``container`` (below), masks' and positionals' own (``blocks/masks.py``,
``blocks/positional.py``), residuals' ``norms_at`` and ``final_norm``, layers' ``parallel``
(``blocks/layer_kinds.py``) and ``no_weight_decay`` (its own parameters are embedding tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from pydantic_core import PydanticUndefined
from torch import nn


@dataclass(frozen=True)
class CostContext:
    """Where a block's cost is counted: ``seq_len`` query tokens per sequence, each seeing
    ``kv_len`` keys; ``rotates``: the stack's positional rotates q and k (rope)."""

    seq_len: int
    kv_len: int
    d_model: int
    n_heads: int | None = None
    role: str = ""
    layer: int = 0
    side: str = ""
    rotates: bool = False

    def with_(self, **changes: Any) -> "CostContext":
        return replace(self, **changes)


@dataclass
class Cost:
    """Per token: forward ``flops``, ``activations`` (elements kept for backward); ``params``
    (all of the block's parameters) and ``active_params`` (those one token uses; default: all)."""

    flops: float = 0.0
    activations: float = 0.0
    params: int = 0
    active_params: int = field(default=-1)

    def __post_init__(self) -> None:
        if self.active_params < 0:
            self.active_params = self.params

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.flops + other.flops, self.activations + other.activations,
                    self.params + other.params, self.active_params + other.active_params)


def is_block(module: nn.Module) -> bool:
    """A registered block, or any module that speaks the protocol (describe or cost)."""
    return hasattr(module, "block_kind") or callable(getattr(module, "cost", None)) \
        or callable(getattr(module, "describe", None))


def is_container(module: nn.Module) -> bool:
    """``container = True``: the block's cost and losses are those of the blocks it holds (a layer,
    a residual placement); ``inspect`` lists what is inside instead of the container."""
    return bool(getattr(module, "container", False))


def params_label(name: str, params: Any) -> str:
    """``name k=v ...`` for every parameter that is required or differs from its default."""
    if params is None:
        return name
    shown = []
    for key, info in type(params).model_fields.items():
        value = getattr(params, key)
        if info.default is PydanticUndefined or value != info.default:
            shown.append(f"{key}={value}")
    return " ".join([name, *shown])


def describe(module: nn.Module) -> str:
    """The block's label: ``module.describe()``, else its registered name and non-default params."""
    own = getattr(module, "describe", None)
    if callable(own):
        return str(own())
    name = getattr(module, "block_name", None) or type(module).__name__
    return params_label(name, getattr(module, "block_params", None))


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def linear_cost(module: nn.Module) -> Cost:
    """2 FLOPs per weight of every nn.Linear inside, and each one's input kept for backward."""
    flops = acts = 0
    for m in module.modules():
        if isinstance(m, nn.Linear):
            flops += 2 * m.weight.numel()
            acts += m.in_features
        elif isinstance(m, nn.LayerNorm):
            acts += m.weight.numel() if m.weight is not None else int(torch.Size(m.normalized_shape).numel())
        elif isinstance(m, nn.RMSNorm):
            acts += 2 * int(torch.Size(m.normalized_shape).numel())
    n = _count(module)
    return Cost(float(flops), float(acts), n, n)


def cost(module: nn.Module, ctx: CostContext) -> Cost:
    """The block's cost: ``module.cost(ctx)``, else ``linear_cost`` (a norm block: 2 x its width kept)."""
    own = getattr(module, "cost", None)
    if callable(own):
        return own(ctx)
    out = linear_cost(module)
    if out.activations == 0 and getattr(module, "block_kind", None) == "norm":
        out.activations = 2.0 * ctx.d_model
    return out


def losses(module: nn.Module) -> dict[str, torch.Tensor]:
    """Auxiliary losses of the block's most recent forward: ``module.losses()``, else {}."""
    own = getattr(module, "losses", None)
    return dict(own()) if callable(own) else {}


def model_losses(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every module's ``losses()``, summed by name (two MoE layers' ``balance`` add up)."""
    out: dict[str, torch.Tensor] = {}
    for module in model.modules():
        if module is model:
            continue
        for name, value in losses(module).items():
            out[name] = out[name] + value if name in out else value
    return out
