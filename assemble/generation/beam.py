"""Beam search for encoder-decoders with the GNMT length penalty (Wu et al. 2016).

A hypothesis Y of ``len`` tokens (eos included, bos not) scores
``log P(Y | X) / ((5 + len) / 6) ** alpha``. Each step expands every live beam, keeps
the ``beam`` best non-eos continuations by log-probability, and records an eos
continuation ranked among the top ``beam`` as a finished hypothesis. A source is done
when its best finished score is at least the best live beam's score at the current
length (the usual heuristic: with beam 1 this is exactly greedy decoding). At the end,
live beams compete with the finished ones; the best hypothesis per source is returned.
"""

from __future__ import annotations

import torch

from ..models import Cache, EncoderDecoderModel
from .cache import generation_cache


def length_penalty(length: int | torch.Tensor, alpha: float) -> float | torch.Tensor:
    """GNMT: ((5 + length) / 6) ** alpha."""
    return ((5 + length) / 6) ** alpha


def _reorder(cache: Cache | None, rows: torch.Tensor, expand_cross: bool) -> None:
    """Keep rows of the self-attention caches and of the cached key padding (a decoder with a
    padding mask). Beams of one source share their cross-attention keys/values, so those are
    only expanded once (from one row per source to ``beam`` rows)."""
    if cache is None:
        return
    for self_cache, cross_cache in cache.layers:
        self_cache.reorder(rows)
        if expand_cross:
            cross_cache.reorder(rows)
    if cache.padding is not None:
        cache.padding = cache.padding.index_select(0, rows)  # [b * B, offset]


def beam_search(model: EncoderDecoderModel, memory: torch.Tensor, memory_padding: torch.Tensor | None,
                n: int, beam: int, alpha: float, bos: int, eos: int | None, fill: int,
                use_cache: bool) -> torch.Tensor:
    """memory [b, s, d] -> best hypothesis per source [b, len] (pad ``fill`` after eos)."""
    from .seq2seq import decoder_logits

    b, device = memory.shape[0], memory.device
    seq = torch.full((b, n + 1), fill, dtype=torch.long, device=device)  # [b * k, 1 + n]; k = 1 at first
    seq[:, 0] = bos
    beam_logp = torch.zeros(b, 1, device=device)  # [b, k]
    best_score = torch.full((b,), float("-inf"), device=device)
    best_seq = torch.full((b, n), fill, dtype=torch.long, device=device)
    best_len = torch.zeros(b, dtype=torch.long, device=device)
    done = torch.zeros(b, dtype=torch.bool, device=device)
    sources = torch.arange(b, device=device)
    cache = generation_cache(len(model.decoder.layers), n) if use_cache else None
    steps = n
    for i in range(n):
        k = beam_logp.shape[1]
        tgt = seq[:, i : i + 1] if use_cache else seq[:, : i + 1]
        logits = decoder_logits(model, tgt, memory, memory_padding, cache)  # [b * k, V]
        vocab = logits.shape[-1]
        logp = logits.float().log_softmax(dim=-1).view(b, k, vocab)  # [b, k, V]
        scores, index = (beam_logp[:, :, None] + logp).view(b, k * vocab).topk(2 * beam, dim=-1)  # [b, 2B]
        origin, token = index // vocab, index % vocab  # beam of origin, new token
        is_eos = token == eos if eos is not None else torch.zeros_like(token, dtype=torch.bool)

        # eos among the top `beam` candidates finishes a hypothesis of i + 1 tokens
        finished = is_eos & (torch.arange(2 * beam, device=device) < beam) & ~done[:, None]
        final = torch.where(finished, scores / length_penalty(i + 1, alpha), float("-inf"))
        top_final, arg = final.max(dim=-1)  # [b]
        better = top_final > best_score
        rows = sources * k + origin.gather(1, arg[:, None]).squeeze(1)  # [b]
        hypothesis = seq[rows, 1:].clone()  # [b, n]
        hypothesis[:, i] = eos if eos is not None else fill
        best_seq = torch.where(better[:, None], hypothesis, best_seq)
        best_score = torch.where(better, top_final, best_score)
        best_len = torch.where(better, torch.full_like(best_len, i + 1), best_len)

        # the `beam` best non-eos candidates live on (at most `beam` of the 2 * beam are eos)
        keep = is_eos.to(torch.int8).sort(dim=-1, stable=True).indices[:, :beam]  # [b, B]
        beam_logp = scores.gather(1, keep)
        rows = (sources[:, None] * k + origin.gather(1, keep)).view(-1)  # [b * B]
        seq = seq[rows]
        seq[:, i + 1] = token.gather(1, keep).view(-1)
        if i == 0:
            memory = memory.repeat_interleave(beam, dim=0)  # [b * B, s, d]
            if memory_padding is not None:
                memory_padding = memory_padding.repeat_interleave(beam, dim=0)  # [b * B, s]
        _reorder(cache, rows, expand_cross=i == 0)
        done = done | (best_score >= beam_logp[:, 0] / length_penalty(i + 1, alpha))
        if eos is not None and bool(done.all()):  # the one host sync per step
            steps = i + 1
            break

    # live beams compete with the finished hypotheses of sources still open
    live_score = beam_logp[:, 0] / length_penalty(steps, alpha)
    live = ~done & (live_score > best_score)
    best_seq = torch.where(live[:, None], seq.view(b, beam, n + 1)[:, 0, 1:], best_seq)
    best_len = torch.where(live, torch.full_like(best_len, steps), best_len)
    width = int(best_len.max())
    return best_seq[:, :width]
