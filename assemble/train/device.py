"""Where and how precisely to train: ``device: auto`` picks CUDA when present; ``precision: auto``
is bf16 autocast on CUDA (fp16 where bf16 is missing) and fp32 on CPU."""

from __future__ import annotations

import contextlib

import torch

from stackform.registry import StackformError


class TrainingError(StackformError):
    """A training run that cannot start or go on (device, precision, resume, non-finite loss)."""


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available, else cpu; other names are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"train.device: '{name}' is not a device (auto, cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"train.device: '{name}' asked for, but CUDA is not available here (use auto or cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise TrainingError(f"train.device: '{name}': this machine has {torch.cuda.device_count()} CUDA devices")
    return device


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise TrainingError(f"train.precision: fp16 needs a CUDA device, this run is on {device.type} (use bf16 or fp32)")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """A torch.autocast context for ``dtype``, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def configure(device: torch.device) -> None:
    """Fast defaults on CUDA: TF32 matmuls for whatever still runs in fp32."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
