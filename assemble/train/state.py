"""``train_state.safetensors``: optimizer moments, RNG states, data position, step. No pickle.

Tensors: ``optimizer.<index>.<name>`` (AdamW's exp_avg, exp_avg_sq, step per parameter),
``rng.torch``, ``rng.cuda.<i>`` and ``rng.data`` (generator states as uint8 tensors).
A distributed run also stores each rank's ``rank.<r>.rng.torch`` (and ``rank.<r>.rng.cuda``).
Metadata ``stackform.train_state``: JSON with step, tokens, elapsed_s, skipped and the
gradient scaler's state (fp16); ``stackform.commit`` and ``stackform.model_sha256`` tie the
file to the model file it was saved with (commit.py); ``stackform.sha256`` is its checksum.
Every entry is checked on load (state_check.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from safetensors.torch import save as safetensors_bytes

from ..checkpoint import DIGEST_KEY, digest, read_checkpoint
from ..errors import CheckpointError
from .state_check import check_optimizer, check_rng, parse_counters

STATE_KEY = "stackform.train_state"
COMMIT_KEY = "stackform.commit"  # ``<step>-<random hex>``: the same in the model file it pairs with
MODEL_SHA_KEY = "stackform.model_sha256"  # SHA-256 of the bytes of that model file
STATE_FILE = "train_state.safetensors"
PAIRING_KEYS = (COMMIT_KEY, MODEL_SHA_KEY, DIGEST_KEY)  # a state without all three predates commits
METADATA_KEYS = ("format", STATE_KEY, *PAIRING_KEYS)


@dataclass
class Counters:
    """Counters that a resumed run continues from."""

    step: int = 0
    tokens: int = 0
    elapsed_s: float = 0.0
    skipped: int = 0
    scaler: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, float] = field(default_factory=dict)  # a time-budget run's Horizon (schedule.py)


def state_digest(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    """SHA-256 of every metadata entry but the digest itself, and of every tensor."""
    texts = json.dumps({k: v for k, v in meta.items() if k != DIGEST_KEY}, sort_keys=True)
    return digest(tensors, texts)


def train_state_bytes(optimizer: torch.optim.Optimizer, data_generator: torch.Generator, counters: Counters, *,
                      commit: str, model_sha256: str, optimizer_state: dict[int, dict[str, Any]] | None = None,
                      rng: dict[str, torch.Tensor] | None = None) -> bytes:
    """The optimizer, RNG and data-generator states and the counters, stamped with the ``commit`` id and
    the SHA-256 of the model file they pair with, and checksummed (see commit.py).

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
    meta = {"format": "pt", STATE_KEY: json.dumps(asdict(counters), sort_keys=True),
            COMMIT_KEY: commit, MODEL_SHA_KEY: model_sha256}
    meta[DIGEST_KEY] = state_digest(tensors, meta)
    return safetensors_bytes(tensors, metadata=meta)


def check_metadata(meta: dict[str, str], path: str) -> Counters:
    """The counters of a state's metadata; unknown keys and a state with only some pairing keys are refused."""
    if STATE_KEY not in meta:
        raise CheckpointError(f"{path}: not a stackform training state (no {STATE_KEY} metadata)")
    unknown = sorted(set(meta) - set(METADATA_KEYS))
    if unknown:
        raise CheckpointError(f"{path}: {unknown[0]:.60}: unexpected metadata entry")
    if meta.get("format") != "pt":
        raise CheckpointError(f"{path}: format: {meta.get('format')!r:.40} (expected 'pt')")
    present = [key for key in PAIRING_KEYS if key in meta]
    if present and len(present) < len(PAIRING_KEYS):
        missing = next(key for key in PAIRING_KEYS if key not in meta)
        raise CheckpointError(f"{path}: {missing}: missing (the file has {present[0]}; damaged metadata?)")
    counters = parse_counters(meta[STATE_KEY], path, STATE_KEY)
    return Counters(**counters)


def load_train_state(path: str | os.PathLike, optimizer: torch.optim.Optimizer,
                     data_generator: torch.Generator, *, set_optimizer: Callable[[dict], None] | None = None,
                     restore_rng: Callable[[dict[str, torch.Tensor]], None] | None = None) -> Counters:
    """Check every entry of what ``train_state_bytes`` wrote, then restore it into ``optimizer``,
    the RNGs and ``data_generator``. Any fault is one CheckpointError, raised before anything is set.

    A distributed run passes ``set_optimizer`` (loads the checked {index: {name: tensor}} state
    into a sharded optimizer) and ``restore_rng`` (sets this rank's own streams).
    """
    path = str(path)
    tensors, meta = read_checkpoint(path)
    counters = check_metadata(meta, path)
    if DIGEST_KEY in meta and meta[DIGEST_KEY] != state_digest(tensors, meta):
        raise CheckpointError(f"{path}: the file is corrupted (its SHA-256 differs from the one saved in it, "
                              f"{DIGEST_KEY})")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = check_optimizer(tensors, params, counters.step, path)
    check_rng(tensors, path)
    try:
        _restore(tensors, state, optimizer, data_generator, set_optimizer, restore_rng)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: the training state could not be restored ({reason:.120})") from None
    return counters


def _restore(tensors: dict[str, torch.Tensor], state: dict[int, dict[str, torch.Tensor]],
             optimizer: torch.optim.Optimizer, data_generator: torch.Generator,
             set_optimizer: Callable[[dict], None] | None,
             restore_rng: Callable[[dict[str, torch.Tensor]], None] | None) -> None:
    if set_optimizer is not None:
        set_optimizer(state)
    else:
        optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    data_generator.set_state(tensors["rng.data"])
    if restore_rng is not None:
        restore_rng(tensors)
        return
    torch.set_rng_state(tensors["rng.torch"])
    cuda_keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    cuda = [tensors[k] for k in cuda_keys]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
