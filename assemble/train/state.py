"""``train_state.safetensors``: optimizer moments, RNG states, data position, step. No pickle.

Tensors: ``optimizer.<index>.<name>`` (AdamW's exp_avg, exp_avg_sq, step per parameter),
``rng.torch``, ``rng.cuda.<i>`` and ``rng.data`` (generator states as uint8 tensors).
Metadata ``stackform.train_state``: JSON with step, tokens, elapsed_s, skipped and the
gradient scaler's state (fp16).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes

from ..checkpoint import atomic_write, read_checkpoint
from ..errors import CheckpointError

STATE_KEY = "stackform.train_state"
STATE_FILE = "train_state.safetensors"


@dataclass
class Counters:
    """Counters that a resumed run continues from."""

    step: int = 0
    tokens: int = 0
    elapsed_s: float = 0.0
    skipped: int = 0
    scaler: dict[str, Any] = field(default_factory=dict)


def save_train_state(path: str | os.PathLike, optimizer: torch.optim.Optimizer, data_generator: torch.Generator,
                     counters: Counters) -> None:
    """Write the optimizer, RNG and data-generator states and the counters, atomically."""
    tensors: dict[str, torch.Tensor] = {}
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    tensors["rng.data"] = data_generator.get_state()
    meta = {"format": "pt", STATE_KEY: json.dumps(asdict(counters), sort_keys=True)}
    atomic_write(path, safetensors_bytes(tensors, metadata=meta))


def load_train_state(path: str | os.PathLike, optimizer: torch.optim.Optimizer,
                     data_generator: torch.Generator) -> Counters:
    """Restore what ``save_train_state`` wrote into ``optimizer``, the RNGs and ``data_generator``."""
    path = str(path)
    tensors, meta = read_checkpoint(path)
    if STATE_KEY not in meta:
        raise CheckpointError(f"{path}: not a stackform training state (no {STATE_KEY} metadata)")
    try:
        counters = Counters(**json.loads(meta[STATE_KEY]))
    except (TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable training state metadata ({exc})") from None
    _load_optimizer(path, tensors, optimizer)
    for name in ("rng.torch", "rng.data"):
        if name not in tensors:
            raise CheckpointError(f"{path}: the training state lacks {name}")
    torch.set_rng_state(tensors["rng.torch"])
    data_generator.set_state(tensors["rng.data"])
    cuda_keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    cuda = [tensors[k] for k in cuda_keys]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    return counters


def _load_optimizer(path: str, tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, entry in state.items():
        if index >= len(params):
            raise CheckpointError(f"{path}: optimizer state for parameter {index}, but the model has {len(params)}")
        for name in ("exp_avg", "exp_avg_sq"):
            if name in entry and entry[name].shape != params[index].shape:
                raise CheckpointError(
                    f"{path}: optimizer {name} of parameter {index} has shape {tuple(entry[name].shape)}, "
                    f"the parameter {tuple(params[index].shape)}"
                )
    current = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})
