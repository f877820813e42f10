"""Choosing the next token from logits: greedy, temperature, top-k, top-p (nucleus) sampling."""

from __future__ import annotations

from math import inf

import torch

from .checks import GenerationError


def check_sampling(where: str, temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise a GenerationError for a bad temperature, top_k or top_p."""
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 <= temperature < inf:
        raise GenerationError(f"{where}: temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise GenerationError(f"{where}: top_k must be an integer >= 1 or None, got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or isinstance(top_p, bool) or not 0 < top_p <= 1):
        raise GenerationError(f"{where}: top_p must be in (0, 1] or None, got {top_p!r}")


def check_generator(where: str, generator: object, device: torch.device) -> None:
    """Raise a GenerationError unless ``generator`` is None or a torch.Generator on ``device``'s type."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise GenerationError(f"{where}: generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise GenerationError(f"{where}: generator is on {generator.device.type}, the ids on {device.type}; "
                              f"make it with torch.Generator('{device.type}')")


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep exactly the k largest logits of each row; the rest become -inf. logits [b, V]."""
    if k >= logits.shape[-1]:
        return logits
    top = logits.topk(k, dim=-1)
    return torch.full_like(logits, float("-inf")).scatter_(-1, top.indices, top.values)


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches p (Holtzman et al. 2020)."""
    if p >= 1:
        return logits
    ordered, order = logits.sort(dim=-1, descending=True)  # [b, V]
    probs = ordered.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # mass of the more likely tokens
    ordered = ordered.masked_fill(before >= p, float("-inf"))  # the most likely token always stays
    return torch.full_like(logits, float("-inf")).scatter_(-1, order, ordered)


def next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits [b, V] -> token ids [b]: argmax when temperature is 0, else a sample."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        logits = filter_top_k(logits, top_k)
    if top_p is not None:
        logits = filter_top_p(logits, top_p)
    probs = logits.softmax(dim=-1)  # [b, V]
    try:
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    except RuntimeError:
        if bool(probs.isfinite().all()):
            raise
        row = int((~probs.isfinite()).any(dim=-1).nonzero()[0, 0])
        raise GenerationError(f"generation: the model's next-token probabilities in row {row} are NaN or inf; "
                              "are its weights finite?") from None
