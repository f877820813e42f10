"""Argument checks shared by the generation loops, and the eval/no-grad mode they run in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..errors import ModelInputError
from ..inputs import check_device


class GenerationError(ModelInputError):
    """Bad arguments to generate / generate_seq2seq."""


def not_generative(where: str, model: object) -> GenerationError:
    """The error for a model without a decoder (an encoder) or something that is no model."""
    kind = getattr(getattr(getattr(model, "spec", None), "model", None), "kind", None)
    what = "an encoder-only model" if kind == "encoder" else f"a {kind or type(model).__name__} object"
    return GenerationError(f"{where}: {what} cannot generate (generation needs a decoder)")


def check_ids(where: str, name: str, ids: object, vocab_size: int, max_len: int,
              device: torch.device | None = None) -> torch.Tensor:
    """A [b, t] integer tensor on ``device`` (the model's) with 1 <= t <= max_len and ids inside the
    vocabulary (one host sync)."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise GenerationError(f"{where}: {name} must be token ids of shape [batch, seq], got {shape}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise GenerationError(f"{where}: {name} must be integer token ids, got {ids.dtype}")
    if device is not None:
        check_device(ids, name, device, "the model's weights", GenerationError, f"{where}: ")
    b, t = ids.shape
    if b == 0 or t == 0:
        raise GenerationError(f"{where}: {name} is empty (shape {(b, t)}); give at least one token per row")
    if t > max_len:
        raise GenerationError(f"{where}: {name} has {t} tokens, more than max_len {max_len} of the spec")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise GenerationError(f"{where}: {name} holds token id {bad}, outside the vocabulary [0, {vocab_size})")
    return ids.long()


def check_masks(where: str, masks: object, start_len: int) -> None:
    """A GenerationError when a mask of the decoder stack cannot decode from ``start_len`` tokens."""
    for mask in masks:
        problem = getattr(mask, "generation_problem", lambda n: None)(start_len)
        if problem:
            raise GenerationError(f"{where}: {problem}")


def check_count(where: str, name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise GenerationError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_token(where: str, name: str, value: object, vocab_size: int) -> int | None:
    """A token id inside the vocabulary, or None (a negative id also means none)."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value >= vocab_size:
        raise GenerationError(f"{where}: {name} must be a token id below vocab_size {vocab_size}, got {value!r}")
    return value if value >= 0 else None


@contextlib.contextmanager
def generation_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode, no autograd, no per-call id checks (ids were checked once); restored afterwards."""
    was_training = model.training
    own_check = "check_inputs" in model.__dict__
    previous = model.__dict__.get("check_inputs")
    model.eval()
    model.check_inputs = False
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)
        if own_check:
            model.check_inputs = previous
        else:
            del model.check_inputs
