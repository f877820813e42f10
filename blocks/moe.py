"""Mixture of experts: a router sends each token to its top-k experts (any registered FFN type).

Routing follows Mixtral's sparse MoE block (Hugging Face ``MixtralSparseMoeBlock``): softmax over the
router's logits, the k largest probabilities, renormalized to sum to 1 (``norm_topk_prob: false``
keeps them as they are: Qwen2-MoE, Qwen3-MoE's option). Dropless: every token reaches its k experts,
whatever the load. Tokens are sorted by expert once and each expert runs on its contiguous slice (a
loop over experts, never over tokens); under ``torch.compile`` every expert runs on every token and
the unrouted ones are weighted by zero (the same sum, no data-dependent shapes, E/k times the FLOPs).

Auxiliary losses of the last forward, through ``losses()``, already weighted:
``moe_balance``: Switch Transformer's load-balancing loss E * sum_e f_e * P_e (f_e the share of the
top-k assignments that go to expert e, P_e its mean router probability; 1 when perfectly balanced,
Hugging Face's ``load_balancing_loss_func`` is k times this), and ``moe_z``: ST-MoE's router z-loss
mean(logsumexp(logits)^2). Both count every position of the batch, padding included.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from torch import nn

from stackform import registry
from stackform.registry import BlockParams, Dims, register

from .protocol import Cost, CostContext
from .protocol import cost as module_cost
from .protocol import describe as describe_block

MAX_EXPERTS = 4096


def _ffn_block(value: Any, where: str) -> dict[str, Any]:
    """A nested FFN block ``{type: NAME, ...params}`` (or ``NAME``) checked against the registry:
    ``{type, **params with defaults}``."""
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ValueError(f"{where} must be an ffn block: {{type: NAME, ...params}} or NAME")
    name = value["type"]
    try:
        entry = registry.get("ffn", name)
    except registry.RegistryError as exc:
        raise ValueError(str(exc)) from None
    if getattr(entry.cls, "sparse", False):
        raise ValueError(f"an expert cannot itself be a mixture of experts ('{name}')")
    params = {k: v for k, v in value.items() if k != "type"}
    try:
        checked = entry.params.model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(map(str, err["loc"]))
        raise ValueError(f"{key + ': ' if key else ''}{err['msg']} (in the {name} block)") from None
    return {"type": name, **checked.model_dump(mode="json")}


def _build_ffn(block: dict[str, Any], dims: Dims) -> nn.Module:
    entry = registry.get("ffn", block["type"])
    return entry.cls(dims, entry.params.model_validate({k: v for k, v in block.items() if k != "type"}))


@register("ffn", "moe")
class MixtureOfExperts(nn.Module):
    """Mixture of experts (Shazeer 2017, Switch, Mixtral): top-k routing over experts of any FFN type."""

    sparse = True  # a token uses part of the parameters (cost() tells which)

    class Params(BlockParams):
        model_config = ConfigDict(json_schema_extra={"examples": [
            {"n_experts": 4, "top_k": 2, "shared": {"type": "swiglu", "hidden": 16}, "shared_gate": True}]})
        n_experts: int = Field(ge=2, le=MAX_EXPERTS, description="routed experts")
        top_k: int = Field(2, ge=1, description="experts per token")
        expert: dict[str, Any] = Field(default_factory=lambda: {"type": "swiglu"}, validate_default=True,
                                       description="each expert: an ffn block {type, ...params} (default swiglu)")
        shared: dict[str, Any] | None = Field(None, description="an ffn every token also goes through (shared "
                                                               "experts: DeepSeek, Qwen2-MoE)")
        shared_gate: bool = Field(False, description="scale the shared ffn by sigmoid(x w) per token (Qwen2-MoE)")
        norm_topk_prob: bool = Field(True, description="renormalize the top-k probabilities to sum to 1 (Mixtral)")
        balance_loss: float = Field(0.01, ge=0, description="weight of the load-balancing loss (Switch)")
        z_loss: float = Field(0.001, ge=0, description="weight of the router z-loss (ST-MoE)")

        @field_validator("expert", mode="before")
        @classmethod
        def _expert(cls, value: Any) -> dict[str, Any]:
            return _ffn_block(value, "expert")

        @field_validator("shared", mode="before")
        @classmethod
        def _shared(cls, value: Any) -> dict[str, Any] | None:
            return None if value is None else _ffn_block(value, "shared")

        @model_validator(mode="after")
        def _k(self) -> "MixtureOfExperts.Params":
            if self.top_k > self.n_experts:
                raise ValueError(f"@top_k@ top_k ({self.top_k}) must be at most n_experts ({self.n_experts})")
            if self.shared_gate and self.shared is None:
                raise ValueError("@shared_gate@ shared_gate needs a shared ffn (shared: {type: ...})")
            return self

        def check(self, dims: Dims) -> str | None:
            for key in ("expert", "shared"):
                block = getattr(self, key)
                if block is not None:
                    entry = registry.get("ffn", block["type"])
                    problem = entry.params.model_validate({k: v for k, v in block.items() if k != "type"}).check(dims)
                    if problem:
                        return f"{key} ({block['type']}): {problem}"
            return None

    def __init__(self, dims: Dims, params: Params):
        super().__init__()
        self.n_experts, self.top_k = params.n_experts, params.top_k
        self.norm_topk_prob = params.norm_topk_prob
        self.balance_weight, self.z_weight = params.balance_loss, params.z_loss
        self.router = nn.Linear(dims.d_model, params.n_experts, bias=False)
        self.experts = nn.ModuleList(_build_ffn(params.expert, dims) for _ in range(params.n_experts))
        self.shared = _build_ffn(params.shared, dims) if params.shared is not None else None
        self.shared_gate = nn.Linear(dims.d_model, 1, bias=False) if params.shared_gate else None
        self._losses: dict[str, torch.Tensor] = {}

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [n, d] -> (router logits [n, E], top-k weights [n, k] in float32, top-k experts [n, k])."""
        logits = self.router(x)  # [n, E]
        probs = logits.float().softmax(dim=-1)
        weights, experts = probs.topk(self.top_k, dim=-1)  # [n, k] each
        if self.norm_topk_prob:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        self._losses = self._aux_losses(logits, probs, experts)
        return logits, weights, experts

    def _aux_losses(self, logits: torch.Tensor, probs: torch.Tensor, experts: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        if self.balance_weight:
            assigned = experts.reshape(-1)  # [n*k]
            share = torch.zeros(self.n_experts, device=probs.device).scatter_add(
                0, assigned, torch.ones_like(assigned, dtype=torch.float32)) / assigned.numel()  # f_e [E]
            out["moe_balance"] = self.balance_weight * self.n_experts * (share * probs.mean(dim=0)).sum()
        if self.z_weight:
            out["moe_z"] = self.z_weight * torch.logsumexp(logits.float(), dim=-1).square().mean()
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])  # [b*t, d]
        _, weights, experts = self.route(flat)
        if torch.compiler.is_compiling():
            out = self._dense(flat, weights, experts)
        else:
            out = self._sparse(flat, weights, experts)
        if self.shared is not None:
            shared = self.shared(flat)
            if self.shared_gate is not None:
                shared = torch.sigmoid(self.shared_gate(flat)) * shared
            out = out + shared
        return out.view(x.shape)  # [b, t, d]

    def _sparse(self, flat: torch.Tensor, weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
        """Sort the n*k (token, expert) assignments by expert; each expert runs on its slice once."""
        assigned = experts.reshape(-1)  # [n*k]
        order = assigned.argsort(stable=True)
        counts = torch.bincount(assigned, minlength=self.n_experts).tolist()
        token = order // self.top_k  # the token of each sorted assignment
        routed = flat.index_select(0, token)  # [n*k, d], grouped by expert
        outs = [expert(part) for expert, part in zip(self.experts, routed.split(counts))]
        scaled = torch.cat(outs) * weights.reshape(-1)[order, None].to(flat.dtype)  # [n*k, d]
        return torch.zeros_like(flat).index_add(0, token, scaled)

    def _dense(self, flat: torch.Tensor, weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
        """Every expert on every token, weighted by its (zero when not routed) gate: traceable shapes."""
        gates = torch.zeros(flat.shape[0], self.n_experts, device=flat.device).scatter(1, experts, weights)  # [n, E]
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            out = out + gates[:, e:e + 1].to(flat.dtype) * expert(flat)
        return out

    def losses(self) -> dict[str, torch.Tensor]:
        """The weighted auxiliary losses of the most recent forward (``moe_balance``, ``moe_z``)."""
        return dict(self._losses)

    def describe(self) -> str:
        shared = f" + shared {describe_block(self.shared)}" if self.shared is not None else ""
        return f"moe {self.n_experts} x {describe_block(self.experts[0])}, top-{self.top_k}{shared}"

    def cost(self, ctx: CostContext) -> Cost:
        """Per token: the router, k experts and the shared ffn run (active); every expert is stored."""
        expert = module_cost(self.experts[0], ctx)
        extra = [module_cost(m, ctx) for m in (self.shared, self.shared_gate) if m is not None]
        router = self.router.weight.numel()
        fixed_params = router + sum(c.params for c in extra)
        return Cost(
            flops=2.0 * router + self.top_k * expert.flops + sum(c.flops for c in extra),
            activations=float(self.n_experts) + self.top_k * expert.activations + sum(c.activations for c in extra),
            params=fixed_params + self.n_experts * expert.params,
            active_params=fixed_params + self.top_k * expert.active_params,
        )
