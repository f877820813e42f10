"""train.packing: packed causal_lm batches (document ids, no loss across a boundary) and their spec rules."""

from __future__ import annotations

import pytest
import torch

from stackform.assemble import assemble, load_spec, train
from stackform.assemble.data import IGNORE, load_task
from stackform.assemble.data.windows import TextTask, packed_batch
from stackform.assemble.train.loss import chunked_cross_entropy, loss_function
from stackform.specs import SpecError

EOS = 258


def test_packed_batch_ids_and_labels():
    window = torch.tensor([[5, 6, EOS, 7, 8, 9, EOS, 10]])
    batch = packed_batch(window, EOS)
    assert batch["input_ids"].tolist() == [[5, 6, EOS, 7, 8, 9, EOS]]
    assert batch["document_ids"].tolist() == [[0, 0, 0, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[6, EOS, IGNORE, 8, 9, EOS, IGNORE]]  # an eos predicts nothing


@pytest.mark.parametrize("positional", ["learned", "rope", "alibi"])
def test_packed_loss_is_the_sum_of_each_document_alone(make_spec, positional):
    """The loss of a packed window equals the summed losses of its documents run one by one: no
    target and no attention crosses a boundary, and positions restart."""
    spec = load_spec(make_spec(packing=True) | {"model": make_spec()["model"] | {"positional": positional,
                                                                                 "dropout": 0.0}})
    model = assemble(spec, seed=0).eval()
    g = torch.Generator().manual_seed(0)
    docs = [torch.cat([torch.randint(0, 256, (n,), generator=g), torch.tensor([EOS])]) for n in (4, 7, 2, 5)]
    batch = packed_batch(torch.cat(docs)[None], EOS)  # one window holding every document
    with torch.no_grad():
        total, n = loss_function(model, model, spec, compile=False)(batch)  # what training minimizes
        want, want_n = 0.0, 0
        for i, doc in enumerate(docs):
            last = i == len(docs) - 1  # the window's inputs end before the last eos, which is a label
            inputs = doc[:-1] if last else doc
            labels = doc[1:] if last else torch.cat([doc[1:], torch.tensor([IGNORE])])
            hidden_alone = model(inputs[None], logits=False).hidden
            t, k = chunked_cross_entropy(model.head, hidden_alone, labels[None], select=True)
            want, want_n = want + t, want_n + k
    assert int(n) == int(want_n) == batch["input_ids"].numel() - (len(docs) - 1)
    torch.testing.assert_close(total, want, rtol=1e-5, atol=1e-5)


def test_separator_splits_builtin_documents(make_spec):
    plain = load_task(load_spec(make_spec(packing=True)))
    split = load_task(load_spec(make_spec(packing=True, packing_separator="\n\n")))
    assert isinstance(split, TextTask) and isinstance(plain, TextTask)
    n_docs = lambda task: int((torch.from_numpy(task.split.train.astype("int64")) == EOS).sum())  # noqa: E731
    assert n_docs(split) > 2 * n_docs(plain)
    batch = split.train_batch(4)
    assert set(batch) == {"input_ids", "labels", "document_ids"}
    ends = batch["input_ids"] == EOS
    assert (batch["labels"][ends] == IGNORE).all() and (batch["labels"][~ends] != IGNORE).all()


def test_unpacked_batches_are_unchanged(make_spec):
    task = load_task(load_spec(make_spec()))
    batch = task.train_batch(2)
    assert set(batch) == {"input_ids", "labels"} and (batch["labels"] != IGNORE).all()


def test_a_packed_run_trains(tmp_path, make_spec):
    result = train(make_spec(packing=True, steps=3), out_dir=tmp_path / "run", quiet=True)
    assert result.metrics["loss"] > 0 and result.metrics["bpb"] > 0


@pytest.mark.parametrize("kind, fields, expected", [
    ("decoder", {"packing_separator": "\n"}, "train.packing_separator: a packing separator needs packing: true"),
    ("decoder", {"packing": True, "packing_separator": "\n", "data": {"type": "text", "path": "x"}},
     "train.packing_separator: text data: the documents are the files"),
    ("encoder", {"packing": True, "packing_separator": "\n", "data": {"type": "text", "path": "x"}},
     "train.packing_separator: text data: the documents are the files"),
    ("encoder_decoder", {"packing": True, "packing_separator": "\n"},
     "train.packing_separator: builtin 'reverse': seq2seq packs whole pairs"),
    ("decoder", {"packing": True, "packing_separator": ""}, "train.packing_separator"),
])
def test_spec_rules(make_spec, kind, fields, expected):
    with pytest.raises(SpecError, match=expected.replace(".", r"\.")) as info:
        load_spec(make_spec(kind, **fields))
    assert "\n" not in str(info.value)


def test_packing_is_off_by_default(make_spec):
    assert load_spec(make_spec()).train.packing is False


@pytest.mark.parametrize("kind", ["decoder", "encoder", "encoder_decoder"])
def test_every_task_accepts_packing(make_spec, kind):
    assert load_spec(make_spec(kind, packing=True)).train.packing is True
