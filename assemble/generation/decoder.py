"""``generate``: continue prompts with a decoder-only model, with a KV cache by default."""

from __future__ import annotations

import torch

from ..models import DecoderModel, EncoderDecoderModel
from .cache import generation_cache
from .padding import lay_out, pack
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
    attention_mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Continue ``prompt_ids`` [b, t]; returns [b, t + n] with n <= max_new_tokens.

    ``attention_mask`` [b, t] (True / 1 = a real token, as the model reads it) lets rows of
    different lengths share a batch, padded left or right: each row continues as it would
    alone, its new tokens placed right after its last real token (see ``padding.py``).
    ``temperature`` 0 is greedy; otherwise softmax(logits / temperature) is sampled after
    ``top_k`` / ``top_p`` filtering. A row that emits ``eos_id`` (default: the spec's;
    a negative id: never stop) is padded with pad_id afterwards, and generation stops
    early when every row is done. A row never grows past the spec's max_len.
    With ``use_cache`` the prompt is run once and each step feeds one token.
    """
    where = "generate"
    model = _model_check(model, where)
    spec = model.spec.model
    prompt = check_ids(where, "prompt_ids", prompt_ids, spec.vocab_size, spec.max_len, model._device())
    packed = pack(where, "attention_mask", prompt, attention_mask)
    check_count(where, "max_new_tokens", max_new_tokens, 0)
    check_sampling(where, temperature, top_k, top_p)
    check_generator(where, generator, prompt.device)
    eos = check_token(where, "eos_id", spec.eos_id if eos_id is None else eos_id, spec.vocab_size)
    fill = spec.pad_id if spec.pad_id is not None else (eos if eos is not None else 0)
    b, t = prompt.shape
    stops = [n + min(max_new_tokens, spec.max_len - n) for n in packed.lengths]  # each row's final length
    start, total = min(packed.lengths), max(stops)
    lengths = torch.tensor(packed.lengths, device=prompt.device)[:, None]  # [b, 1]
    forced = torch.arange(total, device=prompt.device)[None, :] < lengths  # [b, total] prompt positions
    seq = torch.full((b, total), fill, dtype=torch.long, device=prompt.device)
    given = min(t, total)  # trailing pad columns beyond every row's stop are dropped
    seq[:, :given] = packed.ids[:, :given].masked_fill(~forced[:, :given], fill)
    end, ends = _decode(model, seq, forced, start, stops, eos, fill, temperature, top_k, top_p, generator, use_cache)
    if packed.keep is None:
        return seq[:, :end]
    generated = [max(0, min(end, stop) - n) for n, stop in zip(packed.lengths, ends)]
    return lay_out(packed, prompt, seq[:, :end], generated, fill)


def _decode(model: DecoderModel, seq: torch.Tensor, forced: torch.Tensor, start: int, stops: list[int],
            eos: int | None, fill: int, temperature: float, top_k: int | None, top_p: float | None,
            generator: torch.Generator | None, use_cache: bool) -> tuple[int, list[int]]:
    """Fill ``seq`` [b, total] from column ``start`` on: ``forced`` positions keep their (prompt) token,
    a row is ``fill`` after its eos or past its stop. Returns how many columns hold tokens, and per row
    where it ends (after its eos, else its stop)."""
    b, total = seq.shape
    if total == start:
        return total, stops
    check_masks("generate", model.stack.masks, start)
    past_stop = torch.tensor(stops, device=seq.device)  # [b]
    with generation_mode(model):
        cache = generation_cache(len(model.stack.layers), total) if use_cache else None
        logits = last_logits(model, seq[:, :start], cache)
        done = torch.zeros(b, dtype=torch.bool, device=seq.device)
        ends = past_stop.clone()
        for p in range(start, total):
            token = next_token(logits, temperature, top_k, top_p, generator)  # [b]
            token = torch.where(forced[:, p], seq[:, p], token).masked_fill(done | (p >= past_stop), fill)
            if eos is not None:
                finished = (token == eos) & ~forced[:, p] & ~done
                ends = ends.masked_fill(finished, p + 1)
                done = done | finished
            seq[:, p] = token
            if p + 1 == total:
                break
            if eos is not None and bool((done | (p + 1 >= past_stop)).all()):  # the one host sync per step
                return p + 1, ends.tolist()
            logits = last_logits(model, seq[:, p : p + 1] if use_cache else seq[:, : p + 1], cache)
    return total, ends.tolist()
