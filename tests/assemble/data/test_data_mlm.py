"""MLM masking: 15% of regular tokens; of those 80% mask, 10% random, 10% kept."""

from __future__ import annotations

import math

import torch

from stackform.assemble.data import IGNORE, mask_tokens, unigram_log_probs


def test_masking_rates():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 256, (200, 500), generator=g)
    ids[:, :10] = 257  # specials are never chosen
    inputs, labels = mask_tokens(ids, mask_id=259, generator=g, probability=0.15)
    chosen = labels != IGNORE
    regular = ids < 256
    assert not chosen[~regular].any() and torch.equal(inputs[~regular], ids[~regular])
    assert torch.equal(labels[chosen], ids[chosen])
    n = int(chosen.sum())
    assert abs(n / int(regular.sum()) - 0.15) < 0.005
    masked = (inputs == 259) & chosen
    kept = (inputs == ids) & chosen
    replaced = chosen & ~masked & ~kept
    assert abs(int(masked.sum()) / n - 0.8) < 0.01
    # a random replacement can draw the same byte (1/256 of the time), so "kept" is ~10% + 10%/256
    assert abs(int(kept.sum()) / n - (0.1 + 0.1 / 256)) < 0.01
    assert abs(int(replaced.sum()) / n - 0.1 * 255 / 256) < 0.01
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_masking_is_reproducible_from_the_generator():
    ids = torch.randint(0, 256, (4, 64))
    a = mask_tokens(ids, mask_id=259, generator=torch.Generator().manual_seed(3))
    b = mask_tokens(ids, mask_id=259, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_unigram_log_probs():
    import numpy as np

    tokens = np.array([1, 1, 1, 2], dtype=np.uint16)
    logp = unigram_log_probs(tokens, 4)
    assert math.isclose(float(logp.exp().sum()), 1.0, rel_tol=1e-6)
    assert math.isclose(float(logp[1].exp()), 4 / 8, rel_tol=1e-6)  # add-one: (3 + 1) / (4 + 4)
