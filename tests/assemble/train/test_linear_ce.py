"""The fused head + cross-entropy equals the plain one: loss and every gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stackform.assemble.train.linear_ce import IGNORE, linear_cross_entropy
import stackform.assemble.train.linear_ce as lce


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("chunk", [7, 1 << 26])  # several chunks, or one
@pytest.mark.parametrize("small", [0, 1 << 24], ids=["chunked", "plain"])
def test_matches_plain_cross_entropy(smoothing, with_bias, chunk, small, monkeypatch):
    monkeypatch.setattr(lce, "CHUNK_ELEMENTS", chunk * 37)
    monkeypatch.setattr(lce, "SMALL_ELEMENTS", small)
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 11, 16, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(37, 16, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(37, generator=g, dtype=torch.float64, requires_grad=True) if with_bias else None
    targets = torch.randint(0, 37, (3, 11), generator=g)
    targets[0, :4] = IGNORE

    total, count = linear_cross_entropy(hidden, weight, bias, targets, smoothing)
    (total / count * 2.5).backward()
    got = [hidden.grad.clone(), weight.grad.clone()] + ([bias.grad.clone()] if with_bias else [])
    for t in [hidden, weight] + ([bias] if with_bias else []):
        t.grad = None

    logits = F.linear(hidden, weight, bias)
    expected = F.cross_entropy(logits.reshape(-1, 37), targets.reshape(-1), ignore_index=IGNORE,
                               label_smoothing=smoothing, reduction="sum")
    assert int(count) == 29
    torch.testing.assert_close(total, expected)
    (expected / 29 * 2.5).backward()
    for mine, theirs in zip(got, [hidden.grad, weight.grad] + ([bias.grad] if with_bias else [])):
        torch.testing.assert_close(mine, theirs)


def test_no_grad_gives_the_loss_only(monkeypatch):
    monkeypatch.setattr(lce, "SMALL_ELEMENTS", 0)
    hidden, weight = torch.randn(5, 8), torch.randn(9, 8)
    targets = torch.randint(0, 9, (5,))
    with torch.no_grad():
        total, _ = linear_cross_entropy(hidden, weight, None, targets)
    torch.testing.assert_close(total, F.cross_entropy(hidden @ weight.t(), targets, reduction="sum"))


def test_padding_the_vocabulary_changes_nothing(monkeypatch):
    """The CUDA path pads the vocabulary to a multiple of 128; check the masking on CPU."""
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(6, 8, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 8, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (6,), generator=g)
    total = lce._LinearCrossEntropy.apply(hidden, weight, None, targets, 0.0, 128, None)
    total.backward()
    expected = F.cross_entropy(hidden @ weight.t(), targets, reduction="sum")
    torch.testing.assert_close(total, expected)
    g_h, g_w = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    expected.backward()
    torch.testing.assert_close(g_h, hidden.grad)
    torch.testing.assert_close(g_w, weight.grad)
