"""`extends:` merges specs (cycles detected); dotted overrides edit the raw YAML before validation."""

from __future__ import annotations

import pytest

from stackform.specs import SpecError, load_spec


def test_extends_zoo_and_override_nested(tmp_path):
    (tmp_path / "child.yaml").write_text(
        "extends: gpt-tiny\nname: child\nmodel:\n  n_layers: 2\n  ffn: {type: geglu}\n"  # gpt-tiny's is swiglu
    )
    spec = load_spec(str(tmp_path / "child.yaml"))
    assert spec.name == "child" and spec.model.n_layers == 2 and spec.model.ffn.type == "geglu"
    assert spec.model.d_model == 128  # from gpt-tiny
    assert spec.model.ffn.params.hidden is None  # the child's ffn replaced the base's params? no: merged


def test_extends_merges_same_type_blocks(tmp_path):
    (tmp_path / "child.yaml").write_text("extends: gpt-tiny\nname: child\nmodel:\n  ffn: {type: swiglu, bias: true}\n")
    ffn = load_spec(str(tmp_path / "child.yaml")).model.ffn
    assert (ffn.type, ffn.params.hidden, ffn.params.bias) == ("swiglu", 344, True)  # hidden from gpt-tiny


def test_extends_relative_chain_and_positions(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nmodel:\n  kind: decoder\n  vocab_size: 10\n  d_model: 8\n"
                                        "  n_heads: 3\n  n_layers: 1\n")
    (tmp_path / "mid.yaml").write_text("extends: base.yaml\nname: mid\n")
    (tmp_path / "top.yaml").write_text("extends: mid.yaml\nname: top\nmodel:\n  n_layers: 2\n")
    with pytest.raises(SpecError) as info:
        load_spec(str(tmp_path / "top.yaml"))
    # the error is in base.yaml, and says so
    assert str(info.value).endswith("base.yaml:6:12: model.n_heads: d_model (8) must be divisible by n_heads (3), "
                                    "or set head_dim")
    spec = load_spec(str(tmp_path / "top.yaml"), ["model.n_heads=2"])
    assert (spec.name, spec.model.n_layers, spec.model.n_heads) == ("top", 2, 2)


def test_extends_cycle_is_reported(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(SpecError, match=r"circular extends: a.yaml -> b.yaml -> a.yaml"):
        load_spec(str(tmp_path / "a.yaml"))


def test_extends_missing_file(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nextends: nothere.yaml\n")
    with pytest.raises(SpecError, match=r"a.yaml:2:10: extends: 'nothere.yaml': no spec file"):
        load_spec(str(tmp_path / "a.yaml"))


@pytest.mark.parametrize("override,check", [
    ("model.d_model=256", lambda s: s.model.d_model == 256),
    ("model.attention.window=32", lambda s: s.model.attention.params.window == 32),  # opens up `mha`
    ("model.ffn={type: swiglu, hidden: 96}", lambda s: s.model.ffn.params.hidden == 96),
    ("train.optimizer.lr=3e-4", lambda s: s.train.optimizer.lr == 3e-4),
    ("model.tie_embeddings=false", lambda s: s.model.tie_embeddings is False),
])
def test_overrides(override, check):
    assert check(load_spec("gpt-tiny", [override]))


def test_override_into_layer_list(tmp_path):
    (tmp_path / "s.yaml").write_text("extends: gpt-tiny\nname: s\nmodel:\n  layers:\n    - {repeat: 3}\n"
                                     "    - {repeat: 1, attention: {type: mha, window: 64}}\n")
    spec = load_spec(str(tmp_path / "s.yaml"), ["model.layers.1.attention.window=32"])
    plan = spec.model.plan("decoder")
    assert [layer.attention.params.window for layer in plan.layers] == [None, None, None, 32]


@pytest.mark.parametrize("override,expected", [
    ("model.d_model=abc", "override 'model.d_model=abc':1:15: model.d_model: Input should be a valid integer"),
    ("model.d_model", "override 'model.d_model':1:1: an override is KEY.PATH=VALUE"),
    ("model.layers.3.repeat=1", "model.layers.3: no item 3 in a list of 0"),
    ("model.atention=mha", "model.atention: unknown key 'atention'; did you mean 'attention'?"),
    ("model.attention.type=mah", "model.attention.type: unknown attention 'mah'; did you mean 'mha'?"),
    ("model..x=1", "'model..x' is not a dotted path"),
    ("model.d_model=[1", "bad value '[1'"),
])
def test_bad_overrides_read_like_file_errors(override, expected):
    with pytest.raises(SpecError) as info:
        load_spec("gpt-tiny", [override])
    assert expected in str(info.value)


@pytest.mark.parametrize("value,got", [("[0.9]", 1), ("[0.9, 0.95, 0.99]", 3), ("[]", 0)])
def test_override_with_wrong_tuple_length_names_the_count(value, got):
    override = f"train.optimizer.betas={value}"
    with pytest.raises(SpecError) as info:
        load_spec("gpt-tiny", [override])
    assert [str(issue) for issue in info.value.issues] == [
        f"override '{override}':1:23: train.optimizer.betas: needs 2 items, got {got}"
    ]


@pytest.mark.parametrize("override,expected", [
    ("name.x=1", "name: 'name' is the string 'gpt-tiny', which has no keys: cannot set 'name.x'"),
    ("model.kind.x=1", "model.kind: 'model.kind' is the string 'decoder', which has no keys: cannot set 'model.kind.x'"),
    ("train.task.x=1", "train.task: 'train.task' is the string 'causal_lm', which has no keys"),
    ("name.0=1", "name: 'name' is the string 'gpt-tiny', which has no items: cannot set 'name.0'"),
    ("model.d_model.x=1", "model.d_model: 'model.d_model' is the number 128, which has no keys"),
    ("model.tie_embeddings.x=1", "model.tie_embeddings: 'model.tie_embeddings' is the boolean true, which has no keys"),
    # a key the override itself made up is the override's, not the zoo file's line
    ("model.atention.x=1", "model.atention: unknown key 'atention'; did you mean 'attention'?"),
])
def test_override_into_a_scalar_names_the_override(override, expected):
    with pytest.raises(SpecError) as info:
        load_spec("gpt-tiny", [override])
    assert str(info.value).startswith(f"override '{override}':1:1: {expected}")


def test_spec_dump_round_trips():
    spec = load_spec("transformer-tiny")
    again = load_spec(spec.model_dump(mode="json"))
    assert again == spec and again.model_dump() == spec.model_dump()
