"""``train_state.safetensors``: optimizer moments, RNG states, data position, step. No pickle.

Tensors: ``optimizer.<index>.<name>`` (AdamW's exp_avg, exp_avg_sq, step per parameter),
``rng.torch``, ``rng.cuda.<i>`` and ``rng.data`` (generator states as uint8 tensors).
A distributed run also stores each rank's ``rank.<r>.rng.torch`` (and ``rank.<r>.rng.cuda``).
Metadata ``stackform.train_state``: JSON with step, tokens, elapsed_s, skipped and the
gradient scaler's state (fp16).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

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
                     counters: Counters, *, optimizer_state: dict[int, dict[str, Any]] | None = None,
                     rng: dict[str, torch.Tensor] | None = None) -> None:
    """Write the optimizer, RNG and data-generator states and the counters, atomically.

    A distributed run passes the gathered ``optimizer_state`` ({index: {name: tensor}}) and
    every rank's ``rng`` tensors instead of this process's own (see consolidate.py).
    """
    tensors: dict[str, torch.Tensor] = {}
    state_by_index = optimizer.state_dict()["state"] if optimizer_state is None else optimizer_state
    for index, state in state_by_index.items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
    if rng is None:
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            for i, state in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = state
    else:
        tensors.update(rng)
    tensors["rng.data"] = data_generator.get_state()
    meta = {"format": "pt", STATE_KEY: json.dumps(asdict(counters), sort_keys=True)}
    atomic_write(path, safetensors_bytes(tensors, metadata=meta))


def load_train_state(path: str | os.PathLike, optimizer: torch.optim.Optimizer,
                     data_generator: torch.Generator, *, set_optimizer: Callable[[dict], None] | None = None,
                     restore_rng: Callable[[dict[str, torch.Tensor]], None] | None = None) -> Counters:
    """Restore what ``save_train_state`` wrote into ``optimizer``, the RNGs and ``data_generator``.

    A distributed run passes ``set_optimizer`` (loads the checked {index: {name: tensor}} state
    into a sharded optimizer) and ``restore_rng`` (sets this rank's own streams).
    """
    path = str(path)
    tensors, meta = read_checkpoint(path)
    if STATE_KEY not in meta:
        raise CheckpointError(f"{path}: not a stackform training state (no {STATE_KEY} metadata)")
    try:
        counters = Counters(**json.loads(meta[STATE_KEY]))
    except (TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable training state metadata ({exc})") from None
    _load_optimizer(path, tensors, optimizer, set_optimizer)
    for name in ("rng.torch", "rng.data"):
        if name not in tensors:
            raise CheckpointError(f"{path}: the training state lacks {name}")
    data_generator.set_state(tensors["rng.data"])
    if restore_rng is not None:
        restore_rng(tensors)
        return counters
    torch.set_rng_state(tensors["rng.torch"])
    cuda_keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    cuda = [tensors[k] for k in cuda_keys]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    return counters


def _load_optimizer(path: str, tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                    set_optimizer: Callable[[dict], None] | None = None) -> None:
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
    if set_optimizer is not None:
        set_optimizer(state)
        return
    current = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})
