"""Model calls check their inputs at the boundary: one ModelInputError naming the argument and the values."""

from __future__ import annotations

import pytest
import torch

from stackform.assemble import ModelInputError, StackformError, assemble

TINY = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.max_len=16"]


@pytest.fixture(scope="module")
def models():
    return {zoo: assemble(zoo, overrides=TINY, seed=0).eval()
            for zoo in ("gpt-tiny", "bert-tiny", "transformer-tiny")}


IDS = torch.randint(0, 256, (2, 8))
LONG = torch.zeros(1, 17, dtype=torch.long)
CASES = {
    # name: (zoo, call, expected message)
    "id-too-high": ("gpt-tiny", lambda m: m(torch.full((2, 4), 300)),
                    "input_ids: token id 300 is outside the vocabulary [0, 259)"),
    "id-negative": ("bert-tiny", lambda m: m(torch.full((2, 4), -1)),
                    "input_ids: token id -1 is outside the vocabulary [0, 260)"),
    "float-ids": ("gpt-tiny", lambda m: m(IDS.float()),
                  "input_ids: token ids must be integers (torch.long or torch.int32), got torch.float32"),
    "bool-ids": ("gpt-tiny", lambda m: m(IDS > 3), "got torch.bool"),
    "uint8-ids": ("gpt-tiny", lambda m: m(IDS.to(torch.uint8)), "got torch.uint8"),
    "1d-ids": ("gpt-tiny", lambda m: m(IDS[0]), "input_ids: expected token ids of shape [batch, seq], got (8,)"),
    "3d-ids": ("bert-tiny", lambda m: m(IDS[None]), "got (1, 2, 8)"),
    "list-ids": ("gpt-tiny", lambda m: m([[1, 2, 3]]), "input_ids: expected token ids of shape [batch, seq], got list"),
    "too-long": ("gpt-tiny", lambda m: m(LONG), "input_ids: sequence length 17 exceeds max_len 16 of the spec"),
    "too-long-encoder": ("bert-tiny", lambda m: m(LONG), "input_ids: sequence length 17 exceeds max_len 16"),
    "too-long-src": ("transformer-tiny", lambda m: m(LONG, IDS[:1]), "src_ids: sequence length 17 exceeds max_len 16"),
    "too-long-tgt": ("transformer-tiny", lambda m: m(IDS[:1], LONG), "tgt_ids: sequence length 17 exceeds max_len 16"),
    "too-long-with-cache": ("gpt-tiny", lambda m: m(IDS[:, :4], cache=_cache(m, 14)),
                            "input_ids: sequence length 18 (14 cached + 4 new) exceeds max_len 16"),
    "src-id-too-high": ("transformer-tiny", lambda m: m(IDS + 300, IDS), "src_ids: token id"),
    "tgt-id-negative": ("transformer-tiny", lambda m: m(IDS, IDS - 300), "tgt_ids: token id"),
    "tgt-batch": ("transformer-tiny", lambda m: m(IDS, IDS[:1]), "tgt_ids: batch size 1 does not match the source's 2"),
    "mask-shape": ("gpt-tiny", lambda m: m(IDS, torch.ones(2, 7)),
                   "attention_mask: shape (2, 7) does not match the ids, expected (2, 8)"),
    "mask-4d": ("bert-tiny", lambda m: m(IDS, torch.ones(2, 1, 8, 8)), "attention_mask: shape (2, 1, 8, 8)"),
    "mask-batch": ("bert-tiny", lambda m: m(IDS, torch.ones(3, 8)), "expected (2, 8)"),
    "mask-list": ("gpt-tiny", lambda m: m(IDS, [[1] * 8] * 2), "attention_mask: expected a tensor of shape (2, 8), got list"),
    "mask-additive": ("bert-tiny", lambda m: m(IDS, torch.zeros(2, 8).masked_fill(IDS > 100, float("-inf"))),
                      "attention_mask: expected 1 = token, 0 = padding (or bool), got value -inf"),
    "src-mask": ("transformer-tiny", lambda m: m(IDS, IDS, torch.ones(2, 9)), "src_mask: shape (2, 9)"),
    "tgt-mask": ("transformer-tiny", lambda m: m(IDS, IDS, None, torch.ones(1, 8)), "tgt_mask: shape (1, 8)"),
}


def _cache(model, n: int):
    cache = model.new_cache()
    model(torch.zeros(2, n, dtype=torch.long), cache=cache)
    return cache


@pytest.mark.parametrize("name", CASES)
def test_bad_calls_raise_one_clear_error(models, name):
    zoo, call, expected = CASES[name]
    with pytest.raises(ModelInputError) as info:
        call(models[zoo])
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, StackformError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("zoo", ["gpt-tiny", "bert-tiny"])
def test_good_calls_pass(models, zoo):
    model = models[zoo]
    base = model(IDS)
    assert torch.equal(model(IDS.to(torch.int32)), base)
    mask = torch.ones(2, 8)
    mask[1, 6:] = 0
    assert torch.equal(model(IDS, mask), model(IDS, mask.bool()))  # 1/0 and True/False masks agree
    assert torch.equal(model(IDS, mask.long()), model(IDS, mask.bool()))
    assert model(torch.zeros(2, 16, dtype=torch.long)).shape == (2, 16, model.spec.model.vocab_size)


def test_range_check_can_be_turned_off(models):
    model = models["gpt-tiny"]
    model.check_inputs = False
    try:
        with pytest.raises(IndexError):  # the embedding's own error: no check ran before it
            model(torch.full((1, 4), 300))
        with pytest.raises(ModelInputError, match="exceeds max_len"):  # shape and length checks stay (no sync)
            model(LONG)
    finally:
        model.check_inputs = True


def test_range_check_is_skipped_while_compiling(models, monkeypatch):
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    with pytest.raises(IndexError):
        models["gpt-tiny"](torch.full((1, 4), 300))
