"""``generate_seq2seq``: decode targets for sources with an encoder-decoder model.

The source is encoded once. With ``use_cache`` the decoder feeds one token per step;
the cross-attention keys/values are computed from the memory on the first step and
kept in the cache (``LayerCache`` of each cross-attention layer) for every later step.
"""

from __future__ import annotations

import torch

from ..models import DecoderModel, EncoderDecoderModel
from .beam import beam_search
from .cache import generation_cache
from .padding import pack
from .checks import (
    GenerationError, check_count, check_ids, check_masks, check_token, generation_mode, not_generative,
)
from .sampling import check_generator, check_sampling, next_token


def _model_check(model: object, where: str) -> EncoderDecoderModel:
    if isinstance(model, EncoderDecoderModel):
        return model
    if isinstance(model, DecoderModel):
        raise GenerationError(f"{where}: this is a decoder-only model; use generate(model, prompt_ids, ...)")
    raise not_generative(where, model)


def decoder_logits(model: EncoderDecoderModel, tgt: torch.Tensor, memory: torch.Tensor,
                   memory_padding: torch.Tensor | None, cache=None) -> torch.Tensor:
    """tgt [b, t] attending to memory -> logits of the last position [b, V]."""
    hidden = model.decode(tgt, memory, memory_padding, cache=cache)  # [b, t, d]
    return model.head(hidden[:, -1])  # [b, V]


def generate_seq2seq(
    model: EncoderDecoderModel,
    src_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    beam: int = 1,
    length_penalty: float = 0.6,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    src_mask: torch.Tensor | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    eos_id: int | None = None,
) -> torch.Tensor:
    """Targets for ``src_ids`` [b, s]: [b, n] token ids (without bos), pad_id after eos.

    ``src_mask`` [b, s] marks the real source tokens (True / 1, as the model reads it; left or
    right padding): they are packed to the front, so each source encodes as it would alone.
    The decoder starts from the spec's bos_id. ``beam`` 1 with temperature 0 is greedy;
    temperature > 0 samples (top_k / top_p as in ``generate``). ``beam`` > 1 is beam
    search returning the hypothesis with the best log P / ((5 + len) / 6) ** length_penalty
    (GNMT; the paper used beam 4, length_penalty 0.6). ``eos_id`` defaults to the spec's.
    """
    where = "generate_seq2seq"
    model = _model_check(model, where)
    spec = model.spec.model
    src = check_ids(where, "src_ids", src_ids, spec.vocab_size, spec.max_len, model._device())
    packed = pack(where, "src_mask", src, src_mask)
    check_count(where, "max_new_tokens", max_new_tokens, 0)
    check_count(where, "beam", beam, 1)
    check_sampling(where, temperature, top_k, top_p)
    check_generator(where, generator, src.device)
    if beam > 1 and temperature != 0:
        raise GenerationError(f"{where}: beam search ({beam} beams) is deterministic; use temperature 0, not {temperature}")
    if 2 * beam > spec.vocab_size:
        raise GenerationError(f"{where}: beam {beam} is too wide for vocab_size {spec.vocab_size}")
    if not isinstance(length_penalty, (int, float)) or length_penalty != length_penalty:
        raise GenerationError(f"{where}: length_penalty must be a number, got {length_penalty!r}")
    if spec.bos_id is None:
        raise GenerationError(f"{where}: the spec has no bos_id to start the decoder from (set model.bos_id)")
    eos = check_token(where, "eos_id", spec.eos_id if eos_id is None else eos_id, spec.vocab_size)
    fill = spec.pad_id if spec.pad_id is not None else (eos if eos is not None else 0)
    n = min(max_new_tokens, spec.max_len - 1)  # bos + n tokens fit in max_len
    b = src.shape[0]
    if n == 0:
        return torch.full((b, 0), fill, dtype=torch.long, device=src.device)
    check_masks(where, model.decoder.masks, 1)  # the decoder starts from bos alone
    with generation_mode(model):
        memory, memory_padding = model.encode(packed.ids, packed.packed_keep())  # once per source
        if beam > 1:
            return beam_search(model, memory, memory_padding, n, beam, float(length_penalty),
                               spec.bos_id, eos, fill, use_cache)
        return _sample(model, memory, memory_padding, n, spec.bos_id, eos, fill, use_cache,
                       temperature, top_k, top_p, generator)


def _sample(model: EncoderDecoderModel, memory: torch.Tensor, memory_padding: torch.Tensor | None, n: int,
            bos: int, eos: int | None, fill: int, use_cache: bool, temperature: float,
            top_k: int | None, top_p: float | None, generator: torch.Generator | None) -> torch.Tensor:
    """Greedy or sampled decoding: [b, steps] tokens after bos."""
    b = memory.shape[0]
    seq = torch.full((b, n + 1), fill, dtype=torch.long, device=memory.device)  # bos + n tokens
    seq[:, 0] = bos
    cache = generation_cache(len(model.decoder.layers), n) if use_cache else None
    done = torch.zeros(b, dtype=torch.bool, device=memory.device)
    steps = n
    for i in range(n):
        tgt = seq[:, i : i + 1] if use_cache else seq[:, : i + 1]
        token = next_token(decoder_logits(model, tgt, memory, memory_padding, cache),
                           temperature, top_k, top_p, generator)  # [b]
        if eos is not None:
            token = token.masked_fill(done, fill)
            done = done | (token == eos)
        seq[:, i + 1] = token
        if eos is not None and bool(done.all()):  # the one host sync per step
            steps = i + 1
            break
    return seq[:, 1 : steps + 1]
