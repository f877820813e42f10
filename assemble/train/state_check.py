"""Every entry of ``train_state.safetensors`` is checked before any of it is used.

A fault is one CheckpointError naming the file and the entry: ``PATH: ENTRY: problem``.
Checked: the metadata keys and the counters (types and ranges), every tensor name (no
unknown entries), each parameter's AdamW state (all of exp_avg, exp_avg_sq and step, or
none; moments with the parameter's shape and dtype, finite; step a whole number no
larger than the run's), and the RNG states (uint8 vectors of the generator's size that
a generator accepts).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Sequence

import torch

from ..errors import CheckpointError

MAX_COUNT = 2**53  # above this a step or token count is no count a run reaches (and no longer exact as a float)
MAX_RANKS = 1 << 20
CUDA_RNG_BYTES = 16  # a CUDA (Philox) generator's state: seed and offset, 8 bytes each
MOMENTS = ("exp_avg", "exp_avg_sq")
ADAMW_STATE = (*MOMENTS, "step")
COUNTER_TYPES = {"step": int, "tokens": int, "elapsed_s": float, "skipped": int, "scaler": dict, "schedule": dict}
OPTIONAL_COUNTERS = {"schedule": {}}  # absent from states saved before it existed
SCHEDULE_FIELDS = ("warm", "progress")
SCALER_FIELDS = {"scale": float, "growth_factor": float, "backoff_factor": float, "growth_interval": int,
                 "_growth_tracker": int}
_INDEX = r"(0|[1-9][0-9]{0,8})"
_OPTIMIZER = re.compile(rf"optimizer\.{_INDEX}\.(.+)")
_RNG = re.compile(rf"rng\.(torch|data)|rng\.cuda\.{_INDEX}|rank\.{_INDEX}\.rng\.(torch|cuda)")


def _fail(path: str, entry: str, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: {entry}: {problem}")


class _Huge(str):
    """An integer of more digits than any count has (parsed without converting it)."""

    def __repr__(self) -> str:
        return f"a {len(self)}-digit number"


def _int(text: str) -> int | _Huge:
    return int(text) if len(text) <= 40 else _Huge(text)


def _number(value: Any, kind: type, path: str, entry: str, low: float, high: float) -> None:
    """``value`` is a JSON number of ``kind`` (a float may be written as an int) in [low, high]."""
    if isinstance(value, _Huge):
        raise _fail(path, entry, f"{value!r} is out of range ({low:g} to {high:g})")
    ok_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        raise _fail(path, entry, f"{value!r:.40} is not {'an integer' if kind is int else 'a number'}")
    if not (math.isfinite(value) and low <= value <= high):
        raise _fail(path, entry, f"{value!r:.40} is out of range ({low:g} to {high:g})")


def _schedule(value: Any, path: str, entry: str) -> None:
    """A time-budget run's schedule state: {} or both of warm and progress, each in [0, 1]."""
    if not isinstance(value, dict):
        raise _fail(path, entry, "not a JSON object")
    if not value:
        return
    for name in SCHEDULE_FIELDS:
        if name not in value:
            raise _fail(path, f"{entry}.{name}", "missing")
        _number(value[name], float, path, f"{entry}.{name}", 0, 1)
    extra = sorted(set(value) - set(SCHEDULE_FIELDS))
    if extra:
        raise _fail(path, f"{entry}.{extra[0]:.40}", "unknown field of the schedule")


def parse_counters(text: str, path: str, key: str) -> dict[str, Any]:
    """The counters JSON of the metadata ``key``, checked field by field."""
    try:
        data = json.loads(text, parse_int=_int)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise _fail(path, key, f"not valid JSON ({reason})") from None
    if not isinstance(data, dict):
        raise _fail(path, key, "not a JSON object of counters")
    unknown = sorted(set(data) - set(COUNTER_TYPES))
    if unknown:
        raise _fail(path, f"{key}.{unknown[0]:.40}", f"unknown counter (known: {', '.join(COUNTER_TYPES)})")
    for name, default in OPTIONAL_COUNTERS.items():
        data.setdefault(name, default)
    missing = [name for name in COUNTER_TYPES if name not in data]
    if missing:
        raise _fail(path, f"{key}.{missing[0]}", "missing")
    _number(data["step"], int, path, f"{key}.step", 0, MAX_COUNT)
    _number(data["tokens"], int, path, f"{key}.tokens", 0, MAX_COUNT)
    _number(data["elapsed_s"], float, path, f"{key}.elapsed_s", 0, 1e12)
    _number(data["skipped"], int, path, f"{key}.skipped", 0, data["step"])
    _schedule(data["schedule"], path, f"{key}.schedule")
    scaler = data["scaler"]
    if not isinstance(scaler, dict):
        raise _fail(path, f"{key}.scaler", "not a JSON object")
    if scaler:
        for name, kind in SCALER_FIELDS.items():
            if name not in scaler:
                raise _fail(path, f"{key}.scaler.{name}", "missing")
            low = 0 if name == "_growth_tracker" else 1 if name == "growth_interval" else 1e-45
            _number(scaler[name], kind, path, f"{key}.scaler.{name}", low, MAX_COUNT if kind is int else 3.4e38)
        extra = sorted(set(scaler) - set(SCALER_FIELDS))
        if extra:
            raise _fail(path, f"{key}.scaler.{extra[0]:.40}", "unknown field of the gradient scaler")
    return data


def _vector(tensor: torch.Tensor, path: str, entry: str, size: int | None) -> None:
    if tensor.dtype != torch.uint8 or tensor.ndim != 1 or (size is not None and tensor.numel() != size):
        want = f"{size} bytes" if size is not None else "bytes"
        raise _fail(path, entry, f"a generator state must be a uint8 vector of {want}, not {tensor.dtype} "
                                 f"{tuple(tensor.shape)}")


def check_generator(tensor: torch.Tensor, path: str, entry: str) -> None:
    """A CPU generator state: the right size, and one a generator accepts."""
    _vector(tensor, path, entry, torch.Generator().get_state().numel())
    try:
        torch.Generator().set_state(tensor)
    except (RuntimeError, ValueError) as exc:
        raise _fail(path, entry, f"not a valid generator state ({str(exc).splitlines()[0]:.80})") from None


def check_rng(tensors: dict[str, torch.Tensor], path: str) -> None:
    """Every ``rng.*`` and ``rank.<r>.rng.*`` entry; ``rng.torch`` and ``rng.data`` are required."""
    for name in ("rng.torch", "rng.data"):
        if name not in tensors:
            raise _fail(path, name, "missing (the training state lacks this RNG state)")
    for key, tensor in tensors.items():
        match = _RNG.fullmatch(key)
        if match is None:
            continue
        if match.group(3) is not None and int(match.group(3)) >= MAX_RANKS:
            raise _fail(path, key, f"rank {match.group(3)} is out of range")
        if key.endswith("cuda") or key.startswith("rng.cuda."):
            _vector(tensor, path, key, CUDA_RNG_BYTES)
        else:
            check_generator(tensor, path, key)


def check_optimizer(tensors: dict[str, torch.Tensor], params: Sequence[Any], step: int,
                    path: str) -> dict[int, dict[str, torch.Tensor]]:
    """The AdamW state per parameter index, each entry checked against its parameter."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        match = _OPTIMIZER.fullmatch(key)
        if match is None:
            if not _RNG.fullmatch(key):
                raise _fail(path, key, "unexpected entry (not an optimizer or RNG state)")
            continue
        index, name = int(match.group(1)), match.group(2)
        if index >= len(params):
            raise _fail(path, key, f"optimizer state for parameter {index}, but the model has {len(params)}")
        if name not in ADAMW_STATE:
            raise _fail(path, key, f"unknown AdamW state '{name:.40}' (expected {', '.join(ADAMW_STATE)})")
        state.setdefault(index, {})[name] = value
    for index, entry in sorted(state.items()):
        missing = [name for name in ADAMW_STATE if name not in entry]
        if missing:
            raise _fail(path, f"optimizer.{index}.{missing[0]}", f"missing (parameter {index} has "
                        f"{', '.join(sorted(entry))}); without it the optimizer would restart silently")
        param = params[index]
        for name in MOMENTS:
            moment, key = entry[name], f"optimizer.{index}.{name}"
            if moment.dtype != param.dtype or tuple(moment.shape) != tuple(param.shape):
                raise _fail(path, key, f"{moment.dtype} {tuple(moment.shape)}, but parameter {index} is "
                                       f"{param.dtype} {tuple(param.shape)}")
            if not bool(torch.isfinite(moment).all()):
                raise _fail(path, key, "holds values that are not finite")
            if name == "exp_avg_sq" and bool((moment < 0).any()):
                raise _fail(path, key, "holds negative values (a mean of squares is never negative)")
        count, key = entry["step"], f"optimizer.{index}.step"
        if count.dtype != torch.float32 or count.shape != ():  # what AdamW keeps (fused or not)
            raise _fail(path, key, f"{count.dtype} {tuple(count.shape)}, expected a float32 scalar")
        value = float(count)
        if not (math.isfinite(value) and value == int(value) and 1 <= value <= step):
            raise _fail(path, key, f"{value:g} is not a step count from 1 to the run's step {step}")
    return state
