"""Partial rotary (``rope`` with ``fraction``) in both layouts: equal to GPT-NeoX's and GPT-J's
functions in Hugging Face, and correct with every kernel, packed documents and the KV cache."""

from __future__ import annotations

import warnings

import pytest
import torch

from stackform.assemble import assemble, generate
from stackform.blocks import dispatch, kernels
from stackform.blocks.positional import Rotary
from stackform.registry import Dims
from stackform.specs import SpecError
from variants import VOCAB, base_spec

ROPES = [(fraction, layout) for fraction in (1.0, 0.5, 0.25) for layout in ("half", "interleaved")]
IDS = [f"{f}-{layout}" for f, layout in ROPES]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(kernels, "CHUNK", 4)
    monkeypatch.setattr(kernels, "MIN_BLOCK", 4)
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")


def _rope(fraction: float, layout: str, head_dim: int = 16) -> Rotary:
    dims = Dims(d_model=2 * head_dim, n_heads=2, head_dim=head_dim, max_len=32, n_layers=1, vocab_size=VOCAB)
    return Rotary(dims, Rotary.Params(fraction=fraction, layout=layout))


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.25])
def test_half_layout_is_gpt_neox(fraction):
    from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb

    rope = _rope(fraction, "half")
    r = int(16 * fraction)
    pos = torch.arange(7)
    inv_freq = 1.0 / 10000 ** (torch.arange(0, r, 2).float() / r)
    angles = torch.outer(pos.float(), inv_freq)
    emb = torch.cat((angles, angles), dim=-1)[None]  # [1, t, r], as GPTNeoXRotaryEmbedding
    q, k = torch.randn(2, 2, 7, 16), torch.randn(2, 2, 7, 16)
    want = apply_rotary_pos_emb(q, k, emb.cos(), emb.sin())
    got = rope.rotate(q, k, rope.prepare(pos, pos))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.25])
def test_interleaved_layout_is_gpt_j(fraction):
    from transformers.models.gptj.modeling_gptj import apply_rotary_pos_emb, create_sinusoidal_positions

    rope = _rope(fraction, "interleaved")
    r = int(16 * fraction)
    pos = torch.arange(7)
    sin, cos = create_sinusoidal_positions(32, r)[pos][None].chunk(2, dim=-1)  # [1, t, r/2] each
    q = torch.randn(2, 2, 7, 16)
    q_bt = q.transpose(1, 2)  # GPT-J rotates [b, t, h, hd]
    rotated = apply_rotary_pos_emb(q_bt[..., :r], sin, cos)
    want = torch.cat((rotated, q_bt[..., r:]), dim=-1).transpose(1, 2)
    got, _ = rope.rotate(q, q, rope.prepare(pos, pos))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fraction, layout", ROPES, ids=IDS)
def test_scores_depend_on_the_distance_and_the_rest_passes_through(fraction, layout):
    rope = _rope(fraction, layout)
    r = int(16 * fraction)
    q, k = torch.randn(1, 2, 1, 16), torch.randn(1, 2, 1, 16)

    def score(i: int, j: int) -> torch.Tensor:
        qi, _ = rope.rotate(q, q, rope.prepare(torch.tensor([i]), torch.tensor([i])))
        _, kj = rope.rotate(k, k, rope.prepare(torch.tensor([j]), torch.tensor([j])))
        assert torch.equal(qi[..., r:], q[..., r:]) and torch.equal(kj[..., r:], k[..., r:])
        return (qi * kj).sum(-1)

    torch.testing.assert_close(score(5, 2), score(13, 10), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(score(5, 2), score(5, 4))


def _spec(fraction: float, layout: str, masks=None) -> dict:
    spec = base_spec("decoder")
    spec["model"].update(d_model=32, n_heads=2, n_layers=2, max_len=16, init_std=0.5,
                         positional={"type": "rope", "fraction": fraction, "layout": layout})
    if masks is not None:
        spec["model"]["mask"] = masks
    return spec


@pytest.mark.parametrize("fraction, layout", ROPES, ids=IDS)
def test_every_kernel_and_packed_documents(fraction, layout):
    model = assemble(_spec(fraction, layout, ["causal", {"type": "sliding_window", "window": 3}]), seed=0).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, VOCAB, (2, 12), generator=g)
    docs = torch.tensor([[0] * 5 + [1] * 7, [0] * 3 + [1] * 4 + [2] * 5])
    with torch.no_grad():
        want = model(ids)
        alone = [torch.cat([model(ids[r:r + 1, s:s + n]) for s, n in zip(starts, lengths)], dim=1)
                 for r, (starts, lengths) in enumerate([([0, 5], [5, 7]), ([0, 3, 7], [3, 4, 5])])]
        for kernel in ("dense", "chunked", "blocked", "flex"):
            with dispatch.force(kernel):
                torch.testing.assert_close(model(ids), want, rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(model(ids, document_ids=docs), torch.cat(alone), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fraction, layout", ROPES, ids=IDS)
def test_cached_generation_equals_uncached(fraction, layout):
    model = assemble(_spec(fraction, layout), seed=0)
    prompt = torch.randint(3, VOCAB, (2, 3), generator=torch.Generator().manual_seed(1))
    cached = generate(model, prompt, 10, temperature=0, eos_id=-1)
    uncached = generate(model, prompt, 10, temperature=0, eos_id=-1, use_cache=False)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("fraction, message", [
    (0.1, "int(fraction * head_dim) = int(0.1 * 16) = 1 dims, which must be even and at least 2"),
    (0.3125, "= 5 dims, which must be even"),
    (0.0, "model.positional.fraction: Input should be greater than 0"),
    (1.5, "model.positional.fraction: Input should be less than or equal to 1"),
])
def test_bad_fractions_are_one_located_line(fraction, message):
    with pytest.raises(SpecError, match="^<dict>: model.positional") as err:
        assemble(_spec(fraction, "half"))
    assert message in str(err.value) and "\n" not in str(err.value)
