"""The chunked cross-entropy over the head equals the plain loss, in value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stackform.assemble import train
from stackform.assemble.data import IGNORE
from stackform.assemble.train.loss import chunked_cross_entropy
from stackform.blocks import LMHead


@pytest.mark.parametrize("chunk_rows", [5, 10_000])  # many chunks (recomputed in backward) or one
@pytest.mark.parametrize("select", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_matches_plain_cross_entropy(chunk_rows, select, smoothing):
    torch.manual_seed(0)
    head = LMHead(16, 37).double()
    hidden = torch.randn(3, 11, 16, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 37, (3, 11))
    if select:
        labels[0, :4] = IGNORE
        labels[2, 7:] = IGNORE
    total, n = chunked_cross_entropy(head, hidden, labels, label_smoothing=smoothing, select=select,
                                     chunk_rows=chunk_rows)
    (total / n).backward()
    got = hidden.grad.clone(), head.weight.grad.clone()
    hidden.grad = head.weight.grad = None
    plain = F.cross_entropy(head(hidden).transpose(1, 2), labels, ignore_index=IGNORE, label_smoothing=smoothing)
    plain.backward()
    assert n == int((labels != IGNORE).sum())
    assert torch.allclose(total / n, plain, atol=1e-12)
    assert torch.allclose(got[0], hidden.grad, atol=1e-12) and torch.allclose(got[1], head.weight.grad, atol=1e-12)


def test_selection_projects_only_the_labelled_rows(monkeypatch):
    import stackform.assemble.train.loss as loss

    calls = []
    fused = loss.linear_cross_entropy
    monkeypatch.setattr(loss, "linear_cross_entropy", lambda h, *a, **k: calls.append(h.shape[0]) or fused(h, *a, **k))
    head = LMHead(8, 11)
    labels = torch.full((2, 10), IGNORE)
    labels[0, 3] = labels[1, 9] = 4
    chunked_cross_entropy(head, torch.randn(2, 10, 8), labels, select=True)
    assert calls == [2]


@pytest.mark.parametrize("kind", ["decoder", "encoder", "encoder_decoder"])
def test_compiled_training_loss_equals_eager(kind, make_spec):
    """``loss_function(compile=True)`` (what ``train.compile: true`` trains with: the model compiled, the
    fused loss eager) gives the eager loss and gradients; a causal LM's model and fused loss also trace
    as one graph with no breaks (on CUDA that one graph gave zero gradients: docs/performance.md)."""
    from stackform.assemble import assemble
    from stackform.assemble.data import load_task
    from stackform.assemble.train.loss import loss_function
    from stackform.specs import load_spec

    spec = load_spec(make_spec(kind), ["model.dropout=0.0"])
    model = assemble(spec, seed=0)
    model.check_inputs = False
    batch = load_task(spec).train_batch(spec.train.batch_size)
    eager = loss_function(model, model, spec, compile=False)
    total, n = eager(batch)
    (total / n).backward()
    want = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    torch._dynamo.reset()
    if kind == "decoder":
        explained = torch._dynamo.explain(lambda b: eager(b)[0])(batch)
        assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
    compiled_total, compiled_n = loss_function(model, model, spec, compile=True)(batch)
    (compiled_total / compiled_n).backward()
    assert int(compiled_n) == int(n)
    assert torch.allclose(compiled_total, total, rtol=1e-5)
    for a, b in zip(want, (p.grad for p in model.parameters())):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("kind", ["encoder", "encoder_decoder"])  # micro-batches with different target counts
def test_grad_accum_equals_the_bigger_batch(tmp_path, monkeypatch, make_spec, kind):
    """batch_size 2 x grad_accum 2 trains on the mean over all the step's targets, as batch_size 4 does."""
    import json

    import stackform.assemble.train.run as run_module

    load_task = run_module.load_task

    def fixed_rows(spec):  # both runs see the same 4 rows: those of one batch of 4
        task = load_task(spec)
        rows = task.train_batch(4)
        queue = [0]

        def train_batch(n):
            start = queue[0]
            queue[0] = (start + n) % 4
            return {key: value[start:start + n] for key, value in rows.items()}

        task.train_batch = train_batch
        return task

    monkeypatch.setattr(run_module, "load_task", fixed_rows)
    records = []
    for batch_size, accum in ((4, 1), (2, 2)):
        spec = make_spec(kind, steps=1, batch_size=batch_size, grad_accum=accum, log_every=1, samples=0,
                         schedule={"type": "constant", "warmup": 0})
        spec["model"]["dropout"] = 0.0
        out = tmp_path / f"b{batch_size}"
        train(spec, out_dir=out, quiet=True)
        records.append(json.loads((out / "metrics.jsonl").read_text().splitlines()[0]))
    assert records[0]["loss"] == pytest.approx(records[1]["loss"], rel=1e-5)
    assert records[0]["grad_norm"] == pytest.approx(records[1]["grad_norm"], rel=1e-4)
