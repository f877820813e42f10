"""Spec errors read `file:line:col: dotted.path: message`, point at the right line, and suggest fixes."""

from __future__ import annotations

import os
import textwrap

import pytest

from stackform.specs import SpecError, load_spec

BASE = """\
name: t
model:
  kind: decoder
  vocab_size: 259
  d_model: 128
  n_heads: 4
  n_layers: 2
"""


def _error(tmp_path, text: str, overrides=()) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(SpecError) as info:
        load_spec(str(path), overrides)
    message = str(info.value)
    assert "\n" not in message
    return message.replace(os.path.relpath(path), "spec.yaml").replace(str(path), "spec.yaml")


CASES = [
    # (extra yaml appended under model:, expected message)
    ("  attention: {type: mah}\n", "spec.yaml:8:21: model.attention.type: unknown attention 'mah'; did you mean 'mha'?"),
    ("  attention: mah\n", "spec.yaml:8:14: model.attention.type: unknown attention 'mah'; did you mean 'mha'?"),
    ("  n_layer: 3\n", "spec.yaml:8:3: model.n_layer: unknown key 'n_layer'; did you mean 'n_layers'?"),
    ("  ffn: {type: mlp, hiden: 64}\n", "spec.yaml:8:20: model.ffn.hiden: unknown key 'hiden'; did you mean 'hidden'?"),
    ("  ffn: {type: mlp, activation: rellu}\n", "spec.yaml:8:32: model.ffn.activation: 'rellu' is not one of relu"),
    ("  dropout: 1.5\n", "spec.yaml:8:12: model.dropout: Input should be less than 1 (got 1.5)"),
    ("  attention: {type: gqa, n_kv_heads: 3}\n",
     "spec.yaml:8:14: model.attention: n_heads (4) must be divisible by n_kv_heads (3)"),
    ("  attention: {type: mha, window: 0}\n", "spec.yaml:8:34: model.attention.window: Input should be greater than 0"),
    ("  positional: rope\n  head_dim: 7\n", "model.positional: rope needs an even head_dim, got 7"),
    ("  layers:\n    - {repeat: 1}\n    - {repeat: 3, ffn: swiglu}\n",
     "spec.yaml:9:5: model.layers: repeats add up to 4 but n_layers is 2"),
    ("  layers:\n    - {repeat: 2, ffn: {type: swiglu, bias: maybe}}\n",
     "spec.yaml:9:45: model.layers.0.ffn.bias: Input should be a valid boolean"),
    ("  pad_id: 300\n", "spec.yaml:8:11: model.pad_id: pad_id (300) must be below vocab_size (259)"),
    ("  decoder: {n_layers: 2}\n", "spec.yaml:8:12: model.decoder: 'decoder:' is only for kind encoder_decoder"),
    ("  d_model: 130\n", "duplicate key 'd_model' (first defined at line 5)"),
    # a union member whose type is required (no default): its keys are listed, not "(allowed: )"
    ("train:\n  data: {type: text, path: a.txt, name: pydoc}\n",
     "spec.yaml:9:35: train.data.name: unknown key 'name' (allowed: type, path, val_fraction)"),
    ("train:\n  task: seq2seq\n  data: {type: pairs, path: a.tsv, pth: b}\n",
     "train.data.pth: unknown key 'pth'; did you mean 'path'? (allowed: type, path, val_fraction)"),
    # a fixed-length tuple given too few or too many items: the count, at the list (not "required key '1'")
    ("train:\n  optimizer: {betas: [0.9]}\n", "spec.yaml:9:22: train.optimizer.betas: needs 2 items, got 1"),
    ("train:\n  optimizer:\n    betas:\n      - 0.9\n      - 0.95\n      - 0.99\n",
     "spec.yaml:11:7: train.optimizer.betas: needs 2 items, got 3"),
]


@pytest.mark.parametrize("extra,expected", CASES, ids=[c[1].split(": ")[1] if ": " in c[1] else c[1] for c in CASES])
def test_spec_error_messages(tmp_path, extra, expected):
    assert expected in _error(tmp_path, BASE + extra)


@pytest.mark.parametrize("extra, expected", [
    # a block under model: of an encoder-decoder is checked for each side it is built into, and says which
    ("  positional: {type: relative_bias, num_buckets: 8, max_distance: 4}\n",
     "model.positional: max_distance (4) must be above the exact buckets (4) (in the decoder)"),
    ("  positional: {type: relative_bias, num_buckets: 2, max_distance: 4}\n",
     "model.positional: num_buckets (2) is too small: at least 2 per direction are needed (in the encoder)"),
    # cross-attention is only the decoder's: no side to name
    ("  cross_attention: {type: gqa, n_kv_heads: 3}\n",
     "model.cross_attention: n_heads (4) must be divisible by n_kv_heads (3)"),
])
def test_encoder_decoder_shared_blocks_are_checked_per_side(tmp_path, extra, expected):
    message = _error(tmp_path, BASE.replace("kind: decoder", "kind: encoder_decoder") + "  bos_id: 1\n" + extra)
    assert message.endswith(expected), message


def test_divisibility_shows_values(tmp_path):
    msg = _error(tmp_path, BASE.replace("d_model: 128", "d_model: 130"))
    assert msg == "spec.yaml:6:12: model.n_heads: d_model (130) must be divisible by n_heads (4), or set head_dim"


def test_yaml_syntax_error_has_position(tmp_path):
    msg = _error(tmp_path, BASE + "  ffn: {type: mlp\n")
    assert msg.startswith("spec.yaml:9:1: YAML syntax error")


def test_tabs_are_explained(tmp_path):
    msg = _error(tmp_path, BASE + "\tffn: mlp\n")
    assert msg.startswith("spec.yaml:8:1: YAML syntax error") and "indent with spaces, not tabs" in msg


def test_task_must_fit_the_model_kind(tmp_path):
    msg = _error(tmp_path, BASE + "train:\n  task: seq2seq\n")
    assert msg == "spec.yaml:9:9: train.task: task seq2seq does not fit model.kind decoder (use causal_lm)"


def test_seq_len_of_a_seq2seq_spec_is_refused(tmp_path):
    """seq2seq batches are as long as their longest pair: a train.seq_len would be silently ignored."""
    text = BASE.replace("kind: decoder", "kind: encoder_decoder") + "  bos_id: 1\ntrain:\n  seq_len: 32\n"
    msg = _error(tmp_path, text)
    assert msg == "spec.yaml:10:12: train.seq_len: seq2seq pairs set their own lengths; leave seq_len out"
    load_spec(str(tmp_path / "spec.yaml"), ["train.seq_len=null"])  # left out: fine


def test_encoder_decoder_without_decoder_layers(tmp_path):
    text = BASE.replace("kind: decoder", "kind: encoder_decoder").replace("  n_layers: 2\n", "")
    msg = _error(tmp_path, text + "  encoder: {n_layers: 2}\n")
    assert "model.decoder.n_layers: the decoder has no layers: set model.decoder.n_layers or model.n_layers" in msg


def test_missing_required_key(tmp_path):
    msg = _error(tmp_path, BASE.replace("  vocab_size: 259\n", ""))
    assert msg == "spec.yaml:3:3: model.vocab_size: required key 'vocab_size' is missing"


def test_missing_file_and_zoo_typo():
    with pytest.raises(SpecError, match="did you mean the zoo spec 'gpt-tiny'"):
        load_spec("gpt-tny")


def test_all_issues_are_collected(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(BASE + "  n_layer: 3\n  dropout: 2\n")
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    assert [i.path for i in info.value.issues] == ["model.n_layer", "model.dropout"]


@pytest.mark.parametrize("overrides, got", [
    ("model.d_model=64", "got 'model.d_model=64'"),  # a bare string was applied letter by letter
    (["model.d_model=64", 5], "got a list holding a non-str"),
])
def test_overrides_must_be_a_list_of_strings(overrides, got):
    with pytest.raises(SpecError, match=f"^<overrides>: overrides must be a list of KEY.PATH=VALUE strings, {got}"):
        load_spec("gpt-tiny", overrides)
