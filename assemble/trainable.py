"""The cheap checks a valid spec must also pass to be trained here; ``stackform validate`` runs
them too, so a spec it accepts does not crash in ``train`` (issue 13 defect 12, issue 16).

Each problem is (dotted spec key, message): the byte tokenizer's needs (256 byte ids, the special
ids below vocab_size), the token stream's dtype (every id a token cache can hold), and whether one
training step fits this machine's memory (``size.check_training_fits``; skipped with
``--force-size`` / ``allow_large=True``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from stackform.registry import StackformError
from stackform.specs import Spec

from .data.tokens import TOKEN_DTYPES
from .errors import ModelInputError
from .size import ModelSizeError, check_training_fits, locate
from .tokenizer import ByteTokenizer

SPECIAL = ("pad_id", "bos_id", "eos_id", "mask_id")


def tokenizer_problems(spec: Spec) -> list[tuple[str, str]]:
    """(key, message) for each way the spec's ids do not fit its tokenizer or the token cache."""
    model = spec.model
    if spec.train.tokenizer.type != "bytes":
        from .tokenizers.checks import vocab_tokenizer_problems

        return vocab_tokenizer_problems(spec)
    if model.vocab_size < 256:
        return [("model.vocab_size", f"the byte tokenizer (train.tokenizer: {spec.train.tokenizer.type}) needs "
                                     f"vocab_size >= 256 (the byte values), the spec has {model.vocab_size}")]
    try:
        tok = ByteTokenizer.for_model(model)
    except ModelInputError as exc:
        return [("model.vocab_size", str(exc))]
    problems = []
    widest = TOKEN_DTYPES[-1]  # the cache takes uint16 while the ids fit, else this
    largest = int(np.iinfo(widest).max)
    for name in SPECIAL:
        value = getattr(tok, name)
        given = getattr(model, name) is not None
        if name == "mask_id" and not given:
            continue  # pad_id's value, checked as pad_id
        key = f"model.{name}" if given else "model.vocab_size"
        if value >= model.vocab_size:
            what = f"{name} {value}" if given else f"the default {name} {value}"
            problems.append((key, f"{what} must be below vocab_size ({model.vocab_size}); set model.{name} "
                                  f"or raise vocab_size to {value + 1}"))
        elif value > largest:
            problems.append((key, f"{name} {value} does not fit the token stream's {np.dtype(widest).name} "
                                  f"ids (at most {largest})"))
    return problems


def check_trainable(spec: Spec, device: torch.device, where: Callable[[str], str], allow_large: bool = False
                    ) -> list[tuple[str, str]]:
    """Every problem as (``file:line:col: key``, message); the memory check only without ``allow_large``."""
    from .train.init_from import pattern_problems

    found = tokenizer_problems(spec) + pattern_problems(spec)  # ids vs tokenizer; freeze / LoRA patterns
    problems = [(f"{where(key)}{key}", message) for key, message in found]
    if not allow_large and not problems:
        try:
            check_training_fits(spec, device, where)
        except ModelSizeError as exc:
            problems.append(_split(str(exc)))
    return problems


def require_trainable(spec: Spec, device: torch.device, where: Callable[[str], str], allow_large: bool = False
                      ) -> None:
    """Raise the first problem ``check_trainable`` finds as one StackformError line."""
    problems = check_trainable(spec, device, where, allow_large)
    if problems:
        key, message = problems[0]
        raise TrainabilityError(f"{key}: {message}" if key else message)


class TrainabilityError(StackformError, ValueError):
    """A valid spec that cannot be trained here (its ids, or its size on this machine)."""


def _split(text: str) -> tuple[str, str]:
    """``file:line:col: key: message`` -> (``file:line:col: key``, message)."""
    parts = text.split(": ")
    for i, part in enumerate(parts):
        if part.startswith(("model.", "train.")):
            return ": ".join(parts[: i + 1]), ": ".join(parts[i + 1:])
    return "", text


def where_of(spec_like: object, overrides: Sequence[str]) -> Callable[[str], str]:
    """``key -> 'file:line:col: '`` for a spec path or zoo name and its overrides ('' for others)."""
    return lambda key: locate(spec_like, overrides, key) if key else ""
