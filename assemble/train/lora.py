"""LoRA on named linear layers (``train.lora``), through the registered ``adapter`` kind.

Each targeted ``nn.Linear`` gets its adapter as a child module ``lora`` (so its tensors are named
``<layer>.lora.a`` and ``<layer>.lora.b`` and sit in the layer's part of a checkpoint) and a forward
hook that adds the adapter's output. Every other parameter is frozen. ``build_model`` applies this
for a spec with ``train.lora``, so a LoRA run's checkpoint loads (and resumes) as it trained;
``merge_lora`` folds the adapters into the weights and gives a plain model.
"""

from __future__ import annotations

import fnmatch
import json

from pathlib import Path


import torch
from torch import nn

from stackform import registry
from stackform.specs import Spec

from ..errors import StackformError

ADAPTER_FILE = "adapter.safetensors"
ADAPTER_KEY = "stackform.lora"  # its metadata: the train.lora settings and the layers adapted


def name_matches(name: str, pattern: str) -> bool:
    """``pattern`` (fnmatch) matches the dotted ``name`` or a tail of it (``layers.0.*`` matches
    ``stack.layers.0.ffn.up.weight``)."""
    parts = name.split(".")
    return any(fnmatch.fnmatchcase(".".join(parts[i:]), pattern) for i in range(len(parts)))


def _lora_hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    adapter = getattr(module, "lora", None)  # looked up each call: survives deepcopy, gone after a merge
    return output if adapter is None else output + adapter.delta(args[0])


def lora_targets(model: nn.Module, patterns: list[str]) -> list[str]:
    """Names of the linear layers the patterns pick; a pattern that picks none is an error."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    for i, pattern in enumerate(patterns):
        if not any(name_matches(name, pattern) for name in linears):
            shown = ", ".join(linears[:6]) + (", ..." if len(linears) > 6 else "")
            raise StackformError(f"train.lora.targets.{i}: {pattern!r} matches no linear layer (they are: {shown})")
    return [name for name in linears if any(name_matches(name, p) for p in patterns)]


def apply_lora(model: nn.Module, spec: Spec) -> list[str]:
    """Attach the spec's LoRA adapters to the layers its targets name; freeze everything else."""
    settings = spec.train.lora
    entry = registry.get("adapter", "lora")
    params = entry.params(rank=settings.rank, alpha=settings.alpha, dropout=settings.dropout)
    names = lora_targets(model, settings.targets)
    for param in model.parameters():
        param.requires_grad_(False)
    for name in names:
        linear = model.get_submodule(name)
        linear.lora = entry.cls(linear, params)
        linear.register_forward_hook(_lora_hook)
    return names


def adapted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear) and hasattr(m, "lora")]


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its layer's weight and remove it; the spec loses ``train.lora``."""
    for _, linear in adapted_layers(model):
        linear.lora.merge_into(linear)
        del linear.lora
    for param in model.parameters():
        param.requires_grad_(True)
    spec = getattr(model, "spec", None)
    if spec is not None and spec.train.lora is not None:
        model.spec = spec.model_copy(update={"train": spec.train.model_copy(update={"lora": None})})
    return model


def write_adapter(folder: Path, model: nn.Module) -> Path | None:
    """``folder/adapter.safetensors``: only the adapters' tensors, with the settings that made them."""
    from safetensors.torch import save as safetensors_bytes

    from ..checkpoint import atomic_write

    layers = adapted_layers(model)
    if not layers:
        return None
    tensors = {f"{name}.lora.{part}": getattr(linear.lora, part).detach().cpu().contiguous()
               for name, linear in layers for part in ("a", "b")}
    meta = {"format": "pt", ADAPTER_KEY: json.dumps(model.spec.train.lora.model_dump(mode="json"), sort_keys=True)}
    atomic_write(folder / ADAPTER_FILE, safetensors_bytes(tensors, metadata=meta))
    return folder / ADAPTER_FILE


def adapter_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for _, m in adapted_layers(model) for p in m.lora.parameters())


def is_adapter_tensor(name: str) -> bool:
    return ".lora." in f".{name}"


