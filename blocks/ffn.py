"""Position-wise feed-forward blocks: the paper's MLP and the gated GLU variants."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import nn

from stackform.registry import BlockParams, Dims, register

from .protocol import Cost, CostContext, linear_cost

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}
Activation = Literal["relu", "gelu", "gelu_tanh", "silu"]


def hidden_size(dims: Dims, hidden: int | None, multiplier: float, multiple_of: int) -> int:
    """``hidden`` if set, else ``multiplier * d_model`` rounded up to ``multiple_of``."""
    if hidden is not None:
        return hidden
    size = int(multiplier * dims.d_model)
    return multiple_of * ((size + multiple_of - 1) // multiple_of)


@register("ffn", "mlp")
class MLP(nn.Module):
    """The paper's FFN(x) = act(x W1 + b1) W2 + b2 (ReLU in the paper, GELU by default here)."""

    class Params(BlockParams):
        activation: Activation = "gelu"
        hidden: PositiveInt | None = Field(None, description="hidden size; default multiplier * d_model")
        multiplier: float = Field(4.0, gt=0)
        multiple_of: PositiveInt = 1
        bias: bool = True

    def __init__(self, dims: Dims, params: Params):
        super().__init__()
        hidden = hidden_size(dims, params.hidden, params.multiplier, params.multiple_of)
        self.up = nn.Linear(dims.d_model, hidden, bias=params.bias)
        self.down = nn.Linear(hidden, dims.d_model, bias=params.bias)
        self.down.residual_out = True  # scaled init (GPT-2)
        self.act = ACTIVATIONS[params.activation]
        self.activation, self.hidden = params.activation, hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))

    def describe(self) -> str:
        return f"{self.block_name} {self.activation}, hidden {self.hidden}"

    def cost(self, ctx: CostContext) -> Cost:
        """The linears, and the pre-activation kept for backward (ReLU keeps only its output)."""
        out = linear_cost(self)
        out.activations += 0 if self.act is F.relu else self.hidden
        return out


class GatedMLP(nn.Module):
    """GLU family (Shazeer 2020): (act(x W) * x V) W2, gate and value in one projection."""

    activation = "silu"

    class Params(BlockParams):
        hidden: PositiveInt | None = Field(None, description="hidden size; default multiplier * d_model")
        multiplier: float = Field(8 / 3, gt=0)
        multiple_of: PositiveInt = 1
        bias: bool = False
        activation: Activation | None = Field(None, description="the gate's activation; default the block's own")

    def __init__(self, dims: Dims, params: Params):
        super().__init__()
        hidden = hidden_size(dims, params.hidden, params.multiplier, params.multiple_of)
        self.hidden = hidden
        self.gate_up = nn.Linear(dims.d_model, 2 * hidden, bias=params.bias)  # [gate | up]
        self.down = nn.Linear(hidden, dims.d_model, bias=params.bias)
        self.down.residual_out = True
        self.activation = params.activation or self.activation
        self.act = ACTIVATIONS[self.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # [b, t, hidden] each
        return self.down(self.act(gate) * up)

    def describe(self) -> str:
        return f"{self.block_name} {self.activation}, hidden {self.hidden}"

    def cost(self, ctx: CostContext) -> Cost:
        """The linears, and the gate's pre-activation and activated gate kept for backward."""
        out = linear_cost(self)
        out.activations += 3 * self.hidden  # [gate | up] (2h) and act(gate) (h)
        return out


@register("ffn", "swiglu")
class SwiGLU(GatedMLP):
    """SwiGLU: SiLU-gated linear unit (PaLM, LLaMA)."""

    activation = "silu"


@register("ffn", "geglu")
class GeGLU(GatedMLP):
    """GeGLU: GELU-gated linear unit (T5 v1.1)."""

    activation = "gelu"


@register("ffn", "reglu")
class ReGLU(GatedMLP):
    """ReGLU: ReLU-gated linear unit."""

    activation = "relu"
