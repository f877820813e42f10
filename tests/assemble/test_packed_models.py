"""Packed documents in an encoder and packed pairs in an encoder-decoder give each document (pair)
what it gets alone: for every registered positional type and every kernel the dispatcher may pick,
attention stays within a document (a target cross-attends to its own source only) and positions
restart on every side. (The decoder-only case is tests/blocks/test_packing.py.)"""

from __future__ import annotations

import warnings

import pytest
import torch

from stackform import registry
from stackform.assemble import assemble
from stackform.assemble.errors import ModelInputError
from stackform.blocks import dispatch, kernels
from variants import PAD, VOCAB, base_spec

POSITIONALS = [e for e in registry.list_blocks() if e.kind == "positional"]
KERNELS = ("dense", "chunked", "flex")
SRC = [[4, 3, 5], [2, 6, 2]]  # source lengths of the pairs of each row (12 positions: the second row ends in 2 pads)
TGT = [[3, 5, 2], [4, 2, 5]]  # target lengths (decoder inputs: bos + target; rows end in 2 and 1 pads)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(kernels, "CHUNK", 4)
    monkeypatch.setattr(kernels, "MIN_BLOCK", 4)
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")


def _model(kind, positional, masks=None):
    spec = base_spec(kind)
    spec["model"].update(d_model=16, n_heads=2, n_layers=2,
                         positional={"type": positional.name, **registry.example_params(positional)})
    if masks is not None:
        spec["model"]["mask"] = masks
    return assemble(spec, seed=0).eval()


def _documents(lengths, width):
    """Ids [b, width] of documents of ``lengths`` per row; pads at a row's end take its last document's id."""
    rows = []
    for row in lengths:
        ids = [d for d, n in enumerate(row) for _ in range(n)]
        rows.append(ids + [len(row) - 1] * (width - len(ids)))
    return torch.tensor(rows)


def _spans(row):
    return [(sum(row[:i]), n) for i, n in enumerate(row)]


def _tokens(lengths, width, generator):
    ids = torch.randint(3, VOCAB, (len(lengths), width), generator=generator)
    for r, row in enumerate(lengths):
        ids[r, sum(row):] = PAD
    return ids


@pytest.mark.parametrize("masks", [None, ["padding"]], ids=["default", "padding"])
@pytest.mark.parametrize("positional", POSITIONALS, ids=[e.name for e in POSITIONALS])
def test_encoder_packed_rows_equal_documents_alone(positional, masks):
    model = _model("encoder", positional, masks)
    lengths = [[5, 3, 4], [2, 7, 3]]
    ids = _tokens(lengths, 12, torch.Generator().manual_seed(0))
    docs = _documents(lengths, 12)
    with torch.no_grad():
        want = torch.cat([torch.cat([model(ids[r:r + 1, s:s + n]) for s, n in _spans(row)], dim=1)
                          for r, row in enumerate(lengths)])
        for kernel in KERNELS:
            with dispatch.force(kernel):
                got = model(ids, document_ids=docs)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=lambda m: f"{kernel}: {m}")
        assert not torch.allclose(model(ids), want, atol=1e-3), "without document_ids the rows must differ"


@pytest.mark.parametrize("positional", POSITIONALS, ids=[e.name for e in POSITIONALS])
def test_encoder_decoder_packed_pairs_equal_pairs_alone(positional):
    """Rows of three (source, target) pairs, the second row padded on both sides (pads continue the
    last document and are hidden as keys by src_mask / tgt_mask)."""
    model = _model("encoder_decoder", positional)
    g = torch.Generator().manual_seed(0)
    src, tgt = _tokens(SRC, 12, g), _tokens(TGT, 12, g)
    src_docs, tgt_docs = _documents(SRC, 12), _documents(TGT, 12)
    with torch.no_grad():
        want = []
        for r in range(len(SRC)):
            pieces = [model(src[r:r + 1, s0:s0 + m], tgt[r:r + 1, t0:t0 + n])
                      for (s0, m), (t0, n) in zip(_spans(SRC[r]), _spans(TGT[r]))]
            want.append(torch.cat(pieces, dim=1))
        real = [sum(row) for row in TGT]
        for kernel in KERNELS:
            with dispatch.force(kernel):
                got = model(src, tgt, src != PAD, tgt != PAD, src_document_ids=src_docs, tgt_document_ids=tgt_docs)
            for r, n in enumerate(real):
                torch.testing.assert_close(got[r, :n], want[r][0], rtol=1e-5, atol=1e-5,
                                           msg=lambda m: f"{kernel}, row {r}: {m}")
            assert torch.isfinite(got).all(), f"{kernel}: pad positions must stay finite"
        plain = model(src, tgt, src != PAD, tgt != PAD)
        assert not torch.allclose(plain[0, :real[0]], want[0][0], atol=1e-3), "without document ids the pairs must mix"


def test_cross_attention_sees_only_its_own_source():
    """Changing one pair's source changes that pair's target outputs only."""
    model = _model("encoder_decoder", next(e for e in POSITIONALS if e.name == "rope"))
    g = torch.Generator().manual_seed(1)
    src, tgt = _tokens(SRC, 12, g), _tokens(TGT, 12, g)
    kw = dict(src_document_ids=_documents(SRC, 12), tgt_document_ids=_documents(TGT, 12))
    with torch.no_grad():
        before = model(src, tgt, src != PAD, tgt != PAD, **kw)
        changed = src.clone()
        changed[0, 4:7] = (changed[0, 4:7] + 1 - 3) % (VOCAB - 3) + 3  # the second pair's source of row 0
        after = model(changed, tgt, changed != PAD, tgt != PAD, **kw)
    moved = (after - before).abs().amax(dim=-1)[0]  # [t]
    second = slice(3, 8)  # the second target of row 0
    assert moved[second].min() > 1e-4
    assert moved[:3].max() < 1e-6 and moved[8:].max() < 1e-6


def test_bad_document_ids_are_one_line():
    model = _model("encoder_decoder", next(e for e in POSITIONALS if e.name == "rope"))
    src = tgt = torch.full((2, 12), 5)
    docs = _documents(SRC, 12)
    with pytest.raises(ModelInputError, match="need both or neither"):
        model(src, tgt, src_document_ids=docs)
    with pytest.raises(ModelInputError, match="tgt_document_ids: shape"):
        model(src, tgt, src_document_ids=docs, tgt_document_ids=docs[:, :3])
    with pytest.raises(ModelInputError, match="src_document_ids: expected integers"):
        model(src, tgt, src_document_ids=docs.float(), tgt_document_ids=docs)
    encoder = _model("encoder", next(e for e in POSITIONALS if e.name == "learned"))
    with pytest.raises(ModelInputError, match="document_ids: shape"):
        encoder(src, document_ids=docs[:, :5])
