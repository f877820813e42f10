"""AdamW with decoupled weight decay on matrices only: no decay on norms, biases and embeddings."""

from __future__ import annotations

import torch
from torch import nn

from stackform.specs.train import OptimizerSpec


def _no_decay_ids(model: nn.Module) -> set[int]:
    """Parameters that get no weight decay: embeddings (token, position) and every vector (biases, norm gains)."""
    ids = {id(p) for p in model.parameters() if p.ndim < 2}
    for module in model.modules():
        if getattr(module, "no_weight_decay", False) or isinstance(module, nn.Embedding):  # declared (blocks.protocol)
            ids.update(id(p) for p in module.parameters(recurse=False))
    return ids


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: [decayed matrices, not-decayed rest]; each shared (tied) parameter once."""
    skip = _no_decay_ids(model)
    decay, no_decay = [], []
    for _, param in model.named_parameters():  # named_parameters lists a tied weight once
        if param.requires_grad:
            (no_decay if id(param) in skip else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


FUSED_DEVICES = ("cuda", "cpu")  # where torch has the fused (single-kernel) AdamW


def build_optimizer(model: nn.Module, spec: OptimizerSpec, device: torch.device) -> torch.optim.AdamW:
    """AdamW from the spec, with torch's fused kernel on CUDA and on the CPU. On the CPU it was 3.8x
    faster than the per-tensor loop at d_model 256 (5.84 -> 1.52 ms per step) and 3x faster than
    the multi-tensor (foreach) path at gpt-tiny's size (docs/performance.md)."""
    fused = device.type in FUSED_DEVICES
    return torch.optim.AdamW(
        param_groups(model, spec.weight_decay), lr=spec.lr, betas=tuple(spec.betas), eps=spec.eps,
        fused=fused or None,
    )
