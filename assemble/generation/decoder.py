"""``generate``: continue prompts with a decoder-only model, with a KV cache by default."""

from __future__ import annotations

import torch

from ..models import DecoderModel, EncoderDecoderModel
from .cache import generation_cache
from .checks import (
    GenerationError, check_count, check_ids, check_masks, check_token, generation_mode, not_generative,
)
from .sampling import check_generator, check_sampling, next_token


def _model_check(model: object, where: str) -> DecoderModel:
    if isinstance(model, DecoderModel):
        return model
    if isinstance(model, EncoderDecoderModel):
        raise GenerationError(f"{where}: this is an encoder-decoder model; use generate_seq2seq(model, src_ids, ...)")
    raise not_generative(where, model)


def last_logits(model: DecoderModel, ids: torch.Tensor, cache=None) -> torch.Tensor:
    """ids [b, t] -> logits of the last position [b, V] (the head runs on that position only)."""
    hidden = model(ids, cache=cache, logits=False).hidden  # [b, t, d]
    return model.head(hidden[:, -1])  # [b, V]


def generate(
    model: DecoderModel,
    prompt_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Continue ``prompt_ids`` [b, t]; returns [b, t + n] with n <= max_new_tokens.

    ``temperature`` 0 is greedy; otherwise softmax(logits / temperature) is sampled after
    ``top_k`` / ``top_p`` filtering. A row that emits ``eos_id`` (default: the spec's;
    a negative id: never stop) is padded with pad_id afterwards, and generation stops
    early when every row is done. The sequence never grows past the spec's max_len.
    With ``use_cache`` the prompt is run once and each step feeds one token.
    """
    where = "generate"
    model = _model_check(model, where)
    spec = model.spec.model
    prompt = check_ids(where, "prompt_ids", prompt_ids, spec.vocab_size, spec.max_len)
    check_count(where, "max_new_tokens", max_new_tokens, 0)
    check_sampling(where, temperature, top_k, top_p)
    check_generator(where, generator, prompt.device)
    eos = check_token(where, "eos_id", spec.eos_id if eos_id is None else eos_id, spec.vocab_size)
    fill = spec.pad_id if spec.pad_id is not None else (eos if eos is not None else 0)
    b, t = prompt.shape
    n = min(max_new_tokens, spec.max_len - t)
    out = torch.full((b, t + n), fill, dtype=torch.long, device=prompt.device)
    out[:, :t] = prompt
    if n == 0:
        return out
    check_masks(where, model.stack.masks, t)
    with generation_mode(model):
        cache = generation_cache(len(model.stack.layers), t + n) if use_cache else None
        logits = last_logits(model, prompt, cache)
        done = torch.zeros(b, dtype=torch.bool, device=prompt.device)
        steps = n
        for i in range(n):
            token = next_token(logits, temperature, top_k, top_p, generator)  # [b]
            if eos is not None:
                token = token.masked_fill(done, fill)
                done = done | (token == eos)
            out[:, t + i] = token
            if i + 1 == n or (eos is not None and bool(done.all())):  # the one host sync per step
                steps = i + 1
                break
            logits = last_logits(model, token[:, None] if use_cache else out[:, : t + i + 1], cache)
    return out[:, : t + steps]
