"""Attention weights: rows sum to 1, causal maps are zero above the diagonal, padding columns are
zero, shapes are layers x heads x queries x keys, and asking for them leaves the logits alone."""

from __future__ import annotations

import pytest
import torch

from stackform import registry
from stackform.assemble.viz import VizError, attention_maps, generated_attention, model_attention, text_attention
from stackform.assemble.viz.tokens import token_labels
from stackform.assemble.tokenizer import ByteTokenizer
from tiny import tiny_model

KINDS = ("decoder", "encoder", "encoder_decoder")


def _ids(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (1, n), generator=torch.Generator().manual_seed(seed))


def _blocks(kind: str) -> list[str]:
    return [e.name for e in registry.list_blocks() if e.kind == kind]


def _example(kind: str, name: str) -> dict:
    return {"type": name, **registry.example_params(registry.get(kind, name))}


def _check_rows_and_causal(weights: dict[str, torch.Tensor], causal_kinds: set[str]) -> None:
    for kind, w in weights.items():
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-5, rtol=0)
        assert (w >= 0).all()
        if kind in causal_kinds:
            t = w.shape[-1]
            above = torch.ones(t, t, dtype=torch.bool).triu(1)
            assert (w[..., above] == 0).all(), f"{kind}: a query attends to a later key"


@pytest.mark.parametrize("model_kind", KINDS)
@pytest.mark.parametrize("block", [("attention", n) for n in _blocks("attention")]
                         + [("positional", n) for n in _blocks("positional")], ids="-".join)
def test_rows_sum_to_one_and_causal_maps_are_lower_triangular(model_kind, block):
    kind, name = block
    model = tiny_model(model_kind, **{kind: _example(kind, name)})
    src, tgt = _ids(7), _ids(5, seed=1)
    weights = model_attention(model, src, tgt if model_kind == "encoder_decoder" else None)
    expected = {"decoder": ["decoder"], "encoder": ["encoder"], "encoder_decoder": ["encoder", "decoder", "cross"]}
    assert list(weights) == expected[model_kind]
    _check_rows_and_causal(weights, {"decoder"})


@pytest.mark.parametrize("model_kind", KINDS)
def test_shapes_are_layers_heads_queries_keys(model_kind):
    model = tiny_model(model_kind, n_layers=3, n_heads=4)
    src, tgt = _ids(7), _ids(5, seed=1)
    maps = attention_maps(model, src, tgt if model_kind == "encoder_decoder" else None)
    shapes = {m.kind: tuple(m.weights.shape) for m in maps}
    if model_kind == "encoder_decoder":
        assert shapes == {"encoder": (3, 4, 7, 7), "decoder": (3, 4, 5, 5), "cross": (3, 4, 5, 7)}
    else:
        assert shapes == {"decoder" if model_kind == "decoder" else "encoder": (3, 4, 7, 7)}
    for m in maps:
        assert (len(m.queries), len(m.keys)) == tuple(m.weights.shape[2:])


def test_returning_attention_leaves_logits_and_default_path_alone():
    model = tiny_model("encoder_decoder")
    src, tgt = _ids(7), _ids(5, seed=1)
    with torch.no_grad():
        plain = model(src, tgt)
        out = model(src, tgt, return_attention=True)
    torch.testing.assert_close(out.logits, plain, atol=1e-5, rtol=1e-5)
    assert {k: len(v) for k, v in out.attentions.items()} == {"encoder": 2, "self": 2, "cross": 2}


def test_padding_columns_are_zero():
    ids = _ids(8)
    ids[0, 5:] = 256  # pad
    encoder = tiny_model("encoder")
    with torch.no_grad():
        w = encoder(ids, return_attention=True).attentions["self"]
    for layer in w:
        assert (layer[0, :, :5, 5:] == 0).all()
    decoder = tiny_model("decoder")
    mask = torch.ones(1, 8, dtype=torch.bool)
    mask[0, 2] = False
    with torch.no_grad():
        w = decoder(ids, attention_mask=mask, return_attention=True).attentions["self"]
    for layer in w:
        assert (layer[0, :, 3:, 2] == 0).all()
        torch.testing.assert_close(layer.sum(-1), torch.ones(layer.shape[:-1]))
    ed = tiny_model("encoder_decoder")
    with torch.no_grad():
        w = ed(ids, _ids(4, 1), return_attention=True).attentions["cross"]
    for layer in w:
        assert (layer[0, :, :, 5:] == 0).all()


def test_windowed_attention_is_zero_outside_the_window():
    model = tiny_model("decoder", attention={"type": "mha", "window": 3})
    w = model_attention(model, _ids(9))["decoder"]
    q, k = torch.arange(9)[:, None], torch.arange(9)[None, :]
    assert (w[..., (q - k) >= 3] == 0).all() and (w[..., k > q] == 0).all()


def test_generated_attention_covers_the_final_sequence():
    decoder = tiny_model("decoder")
    prompt = _ids(4)
    out = generated_attention(decoder, prompt, 5, temperature=0.0, eos_id=-1)
    assert out.ids.shape == (1, 9) and torch.equal(out.ids[:, :4], prompt)
    assert [tuple(w.shape) for w in out.attentions["self"]] == [(1, 2, 9, 9)] * 2
    ed = tiny_model("encoder_decoder")
    out = generated_attention(ed, _ids(6), 4, eos_id=-1)
    assert out.ids.shape == (1, 5) and out.ids[0, 0] == 257  # bos + 4 generated
    assert tuple(out.attentions["cross"][0].shape) == (1, 2, 5, 6)
    with pytest.raises(VizError, match="cannot generate"):
        generated_attention(tiny_model("encoder"), _ids(3), 2)


def test_text_attention_tokenizes_like_training_and_checks_lengths():
    decoder = tiny_model("decoder")
    (m,) = text_attention(decoder, "a b\n")
    assert m.queries == ["<eos>", "a", "␣", "b", "\\n"] and m.keys == m.queries
    (m,) = text_attention(decoder, "ab", max_new=3)
    assert len(m.queries) == 6
    ed = tiny_model("encoder_decoder")
    maps = text_attention(ed, "12", tgt="x")
    assert [m.kind for m in maps] == ["encoder", "decoder", "cross"]
    assert maps[2].queries == ["<bos>", "x"] and maps[2].keys == ["1", "2"]
    with pytest.raises(VizError, match="25 tokens long, more than max_len 24"):
        text_attention(decoder, "x" * 24)
    with pytest.raises(VizError, match="tgt: a decoder model reads one text"):
        text_attention(decoder, "a", tgt="b")
    with pytest.raises(VizError, match="empty"):
        text_attention(decoder, "")


def test_token_labels_are_readable():
    tok = ByteTokenizer()
    assert token_labels(list(b"a \t\x07") + [256, 257, 258], tok) == ["a", "␣", "\\t", "\\x07", "<pad>", "<bos>", "<eos>"]
    assert token_labels(list("é!".encode()), tok) == ["é", "·", "!"]
    assert token_labels([0xC3], tok) == ["\\xc3"]  # a lone lead byte stays escaped
