"""train.packing for mlm (documents packed into encoder windows) and seq2seq (several pairs per row):
the batches, the training loss = the sum of each document (pair) alone for every positional type,
and packed runs that train, evaluate and generate."""

from __future__ import annotations

import pytest
import torch

from stackform import registry
from stackform.assemble import assemble, load_spec, train
from stackform.assemble.data import IGNORE, load_task
from stackform.assemble.data.seq2seq import PairTask
from stackform.assemble.data.windows import TextTask, document_ids
from stackform.assemble.train.loss import chunked_cross_entropy, loss_function

EOS, PAD = 258, 256
POSITIONALS = [e.name for e in registry.list_blocks() if e.kind == "positional"]


def _spec(make_spec, kind, positional, **train_fields):
    raw = make_spec(kind, packing=True, **train_fields)
    raw["model"].update(dropout=0.0, positional={"type": positional})
    return load_spec(raw)


def test_mlm_masking_is_unchanged_by_packing(make_spec):
    """The same windows and masking with and without packing; packing adds the document ids."""
    packed = load_task(load_spec(make_spec("encoder", packing=True)))
    plain = load_task(load_spec(make_spec("encoder")))
    assert isinstance(packed, TextTask) and isinstance(plain, TextTask)
    a, b = packed.train_batch(4), plain.train_batch(4)
    assert set(a) == {"input_ids", "labels", "document_ids"} and set(b) == {"input_ids", "labels"}
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    ends = a["input_ids"] == EOS
    assert (a["document_ids"][:, 1:] - a["document_ids"][:, :-1] == ends[:, :-1].long()).all()
    assert (a["labels"][ends] == IGNORE).all(), "an eos is never masked"
    assert all("document_ids" in batch for batch in packed.eval_batches(4, 2))


@pytest.mark.parametrize("positional", POSITIONALS)
def test_mlm_packed_loss_is_the_sum_of_each_document_alone(make_spec, positional):
    spec = _spec(make_spec, "encoder", positional)
    model = assemble(spec, seed=0).eval()
    g = torch.Generator().manual_seed(0)
    docs = [torch.cat([torch.randint(0, 256, (n,), generator=g), torch.tensor([EOS])]) for n in (5, 9, 3, 6)]
    ids = torch.cat(docs)[None]  # [1, 27]: one window holding every document
    labels = torch.full_like(ids, IGNORE)
    chosen = torch.rand(ids.shape, generator=g) < 0.3
    labels[chosen & (ids < 256)] = ids[chosen & (ids < 256)]
    inputs = torch.where(labels != IGNORE, torch.full_like(ids, spec.model.mask_id), ids)
    batch = {"input_ids": inputs, "labels": labels, "document_ids": document_ids(ids, EOS)}
    with torch.no_grad():
        total, n = loss_function(model, model, spec, compile=False)(batch)
        want, want_n, start = 0.0, 0, 0
        for doc in docs:
            span = slice(start, start + len(doc))
            hidden = model(inputs[:, span], logits=False).hidden
            t, k = chunked_cross_entropy(model.head, hidden, labels[:, span], select=True)
            want, want_n, start = want + t, want_n + k, start + len(doc)
        plain, _ = loss_function(model, model, spec, compile=False)({"input_ids": inputs, "labels": labels})
    assert int(n) == int(want_n) > 0
    torch.testing.assert_close(total, want, rtol=1e-5, atol=1e-5)
    assert abs(float(plain) - float(want)) > 1e-3, "without document ids the documents must mix"


def test_packed_pair_rows(make_spec):
    """Whole pairs, at most max_len per side, ids and labels of each pair in place, pads hidden."""
    spec = load_spec(make_spec("encoder_decoder", packing=True))
    task = load_task(spec)
    assert isinstance(task, PairTask)
    rows = task.packed.rows(8, torch.Generator().manual_seed(0))
    batch = task.packed.batch(rows)
    width = spec.model.max_len
    assert len(rows) == 8 and any(len(row) > 1 for row in rows)
    assert batch["src_ids"].shape[1] <= width and batch["tgt_ids"].shape[1] <= width
    p = task.train
    for r, row in enumerate(rows):
        s0 = t0 = 0
        for d, i in enumerate(row):
            n, m = int(p.src_len[i]), int(p.tgt_len[i])
            assert torch.equal(batch["src_ids"][r, s0:s0 + n], p.src[i, :n])
            assert torch.equal(batch["tgt_ids"][r, t0:t0 + m], p.tgt_in[i, :m])
            assert torch.equal(batch["labels"][r, t0:t0 + m], p.labels[i, :m])
            assert (batch["src_document_ids"][r, s0:s0 + n] == d).all()
            assert (batch["tgt_document_ids"][r, t0:t0 + m] == d).all()
            s0, t0 = s0 + n, t0 + m
        assert batch["src_mask"][r].sum() == s0 and batch["tgt_mask"][r].sum() == t0
        assert (batch["src_ids"][r, s0:] == PAD).all() and (batch["labels"][r, t0:] == IGNORE).all()
    eval_batch = next(task.eval_batches(4, 1))
    assert set(eval_batch) == {"src_ids", "tgt_ids", "labels"}, "validation stays one pair per row"


@pytest.mark.parametrize("positional", POSITIONALS)
def test_seq2seq_packed_loss_is_the_sum_of_each_pair_alone(make_spec, positional):
    spec = _spec(make_spec, "encoder_decoder", positional)
    model = assemble(spec, seed=0).eval()
    task = load_task(spec)
    rows = task.packed.rows(3, torch.Generator().manual_seed(0))
    batch = task.packed.batch(rows)
    p = task.train
    with torch.no_grad():
        total, n = loss_function(model, model, spec, compile=False)(batch)
        want, want_n = 0.0, 0
        for i in (i for row in rows for i in row):
            s, t = int(p.src_len[i]), int(p.tgt_len[i])
            hidden = model(p.src[i:i + 1, :s], p.tgt_in[i:i + 1, :t], logits=False).hidden
            k_sum, k = chunked_cross_entropy(model.head, hidden, p.labels[i:i + 1, :t], select=True)
            want, want_n = want + k_sum, want_n + k
    assert int(n) == int(want_n) == sum(int(p.tgt_len[i]) for row in rows for i in row)
    torch.testing.assert_close(total, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kind", ["encoder", "encoder_decoder"])
def test_a_packed_run_trains_evaluates_and_generates(tmp_path, make_spec, kind):
    result = train(make_spec(kind, packing=True, steps=3), out_dir=tmp_path / "run", quiet=True)
    assert result.metrics["loss"] > 0
    if kind == "encoder_decoder":
        assert "exact_match" in result.metrics
        assert (tmp_path / "run" / "samples.txt").read_text().count("->") == 2, "greedy generation of 2 samples"
