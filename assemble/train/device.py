"""Where and how precisely to train: ``device: auto`` picks CUDA when present; ``precision: auto``
is bf16 autocast on CUDA (fp16 where bf16 is missing) and fp32 on CPU."""

from __future__ import annotations

import contextlib

import torch

from stackform.registry import StackformError


class TrainingError(StackformError):
    """A training run that cannot start or go on (device, precision, resume, non-finite loss)."""


def resolve_device(name: str, where: str = "train.device") -> torch.device:
    """``auto`` -> cuda if available, else cpu; other names must be a device this machine can
    compute on (not ``meta``, not a backend it lacks). ``where`` names the setting in errors."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise TrainingError(f"{where}: {name!r} is not a device (auto, cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"{where}: {name!r} asked for, but CUDA is not available here (use auto or cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise TrainingError(f"{where}: {name!r}: this machine has {torch.cuda.device_count()} CUDA devices")
    if device.type == "meta":
        raise TrainingError(f"{where}: 'meta' holds shapes, not numbers; nothing can run on it (use auto or cpu)")
    if device.type == "cpu" and device.index not in (None, 0):
        raise TrainingError(f"{where}: {name!r}: there is one CPU device, 'cpu'")
    if device.type not in ("cpu", "cuda"):
        try:  # a backend torch names but this machine or build lacks (mps, xpu, xla, ...)
            torch.zeros(1, device=device).add_(1).cpu()
        except Exception as exc:  # each backend fails in its own way
            reason = (str(exc).strip() or type(exc).__name__).splitlines()[0].split(". ")[0][:100]
            raise TrainingError(f"{where}: {name!r} is not available here ({reason}); use auto or cpu") from None
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
