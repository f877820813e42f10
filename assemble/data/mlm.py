"""BERT's masked-language-model corruption (Devlin et al. 2019, section 3.1)."""

from __future__ import annotations

import numpy as np
import torch

IGNORE = -100  # label of positions that are not predicted


def mask_tokens(
    ids: torch.Tensor,
    *,
    mask_id: int,
    generator: torch.Generator,
    probability: float = 0.15,
    n_regular: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose ``probability`` of the regular tokens (ids below ``n_regular``); of those, 80% become
    ``mask_id``, 10% a random regular token, 10% stay. Returns (inputs, labels); labels are IGNORE
    where nothing is predicted. ids [b, t] -> ([b, t], [b, t])."""
    regular = ids < n_regular
    chosen = (torch.rand(ids.shape, generator=generator) < probability) & regular
    action = torch.rand(ids.shape, generator=generator)
    random_ids = torch.randint(0, n_regular, ids.shape, generator=generator)
    inputs = torch.where(chosen & (action < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, inputs)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    return inputs, labels


def unigram_log_probs(tokens: np.ndarray, vocab_size: int, chunk: int = 1 << 24) -> torch.Tensor:
    """log p(token) of the corpus' token frequencies (add-one smoothed): the unigram baseline."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(tokens), chunk):
        counts += np.bincount(np.asarray(tokens[start:start + chunk]), minlength=vocab_size)[:vocab_size]
    counts = torch.from_numpy(counts).double() + 1.0
    return (counts / counts.sum()).log().float()
