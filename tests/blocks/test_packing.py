"""Packed documents (``document_ids``) give each document what it gets alone.

For every registered positional type, a row packing several documents gives, at each document's
tokens, the logits of that document run alone (attention stays inside a document, positions
restart), with every kernel the dispatcher may pick; the document mask is added without the spec
naming it.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from stackform import registry
from stackform.assemble import assemble
from stackform.assemble.errors import ModelInputError
from stackform.blocks import dispatch, kernels
from stackform.blocks.layers import document_positions
from variants import VOCAB, base_spec

POSITIONALS = [e for e in registry.list_blocks() if e.kind == "positional"]
LENGTHS = [[5, 3, 4], [2, 7, 3]]  # documents of the two rows (12 tokens each)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(kernels, "CHUNK", 4)
    monkeypatch.setattr(kernels, "MIN_BLOCK", 4)
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")


def _model(positional, masks):
    spec = base_spec("decoder")
    spec["model"].update(d_model=16, n_heads=2, n_layers=2, mask=masks,
                         positional={"type": positional.name, **registry.example_params(positional)})
    return assemble(spec, seed=0).eval()


def _packed():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, VOCAB, (len(LENGTHS), sum(LENGTHS[0])), generator=g)
    docs = torch.tensor([[d for d, n in enumerate(row) for _ in range(n)] for row in LENGTHS])
    return ids, docs


def test_document_positions_restart():
    _, docs = _packed()
    assert document_positions(docs).tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3],
                                                 [0, 1, 0, 1, 2, 3, 4, 5, 6, 0, 1, 2]]


@pytest.mark.parametrize("masks", [["causal"], ["causal", {"type": "sliding_window", "window": 3}]],
                         ids=["causal", "window"])
@pytest.mark.parametrize("positional", POSITIONALS, ids=[e.name for e in POSITIONALS])
def test_packed_rows_equal_documents_alone(positional, masks):
    model = _model(positional, masks)
    ids, docs = _packed()
    with torch.no_grad():
        alone = []
        for r, row in enumerate(LENGTHS):
            starts = [sum(row[:i]) for i in range(len(row))]
            alone.append(torch.cat([model(ids[r:r + 1, s:s + n]) for s, n in zip(starts, row)], dim=1))
        want = torch.cat(alone)
        for kernel in ("dense", "chunked", "blocked", "flex"):
            with dispatch.force(kernel):
                got = model(ids, document_ids=docs)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=lambda m: f"{kernel}: {m}")
        assert not torch.allclose(model(ids), want, atol=1e-3), "without document_ids the rows must differ"


def test_packed_gradients_match_dense():
    model = _model(next(e for e in POSITIONALS if e.name == "relative_bias"), ["causal"]).train()
    ids, docs = _packed()
    grads = {}
    for kernel in ("dense", "chunked"):
        model.zero_grad()
        with dispatch.force(kernel):
            model(ids, document_ids=docs).square().mean().backward()
        grads[kernel] = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    for a, b in zip(grads["dense"], grads["chunked"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bad_document_ids_are_one_line():
    model = _model(next(e for e in POSITIONALS if e.name == "rope"), ["causal"])
    ids, docs = _packed()
    with pytest.raises(ModelInputError, match="document_ids: shape"):
        model(ids, document_ids=docs[:, :3])
    with pytest.raises(ModelInputError, match="document_ids: expected integers"):
        model(ids, document_ids=docs.float())
    with pytest.raises(ModelInputError, match="KV cache"):
        model(ids, document_ids=docs, cache=model.new_cache())


def test_rope_rotates_by_restarted_positions():
    """Rope's scores are shift-invariant, so the logits alone cannot show a restart: check its state."""
    model = _model(next(e for e in POSITIONALS if e.name == "rope"), ["causal"])
    ids, docs = _packed()
    ctx = model.stack.context(ids.shape[1], 0, ids.device, None, None, docs)
    rope = model.stack.positional
    torch.testing.assert_close(ctx.state[0], rope.cos[document_positions(docs)])
