"""Sizes before allocation: the meta-device sample (one layer per distinct layer plan) describes
the real model exactly, for every registered block; specs too large for this machine are refused
at their key (assemble, validate, train) unless forced; inspect and import-hf answer from arithmetic.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from stackform.assemble import StackformError, assemble, export_hf, import_hf
from stackform.assemble import size as size_module
from stackform.assemble.cli import main
from stackform.assemble.size import ModelSizeError, sample_model
from stackform.specs import SpecError, load_spec, zoo_names
from variants import variants

LAYERED = ["model.n_layers=5",  # groups that repeat, differ and come back
           "model.layers=[{repeat: 2}, {repeat: 1, attention: {type: mha, window: 4}}, {repeat: 2}]"]


def _fits(spec: dict) -> dict:
    if spec["model"]["kind"] == "encoder_decoder":
        spec = {**spec, "train": {"task": "seq2seq", "data": {"type": "builtin", "name": "numbers"}}}
    return spec


def _same_as_built(spec) -> None:
    sample = sample_model(spec, "test")
    model = assemble(spec, device="meta")
    built = {name: (tuple(t.shape), t.dtype) for name, t in model.state_dict().items()}
    assert {name: (shape, dtype) for name, shape, dtype in sample.state()} == built
    assert sample.state_count() == len(built)
    assert sample.parameters() == model.num_parameters()
    tensors = list(model.parameters()) + list(model.buffers())
    assert sum(sample.bytes_by_part().values()) == sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize("spec", [s for _, s in variants()], ids=[i for i, _ in variants()])
def test_the_sample_describes_the_built_model_for_every_block(spec):
    _same_as_built(load_spec(_fits(spec)))


@pytest.mark.parametrize("name", zoo_names())
def test_the_sample_describes_the_built_zoo_models(name):
    _same_as_built(load_spec(name))


def test_the_sample_of_repeating_groups():
    spec = load_spec("gpt-tiny", LAYERED)
    assert sample_model(spec, "test").runs == {"stack.layers.": [(0, 0, 2), (1, 2, 1), (0, 3, 2)]}
    _same_as_built(spec)


def test_inspect_of_a_million_layers_is_arithmetic(capsys):
    one = sample_model(load_spec("gpt-tiny", ["model.n_layers=1"]), "test").parameters()
    two = sample_model(load_spec("gpt-tiny", ["model.n_layers=2"]), "test").parameters()
    assert main(["inspect", "gpt-tiny", "model.n_layers=1000000"]) == 0
    out = capsys.readouterr().out
    assert f"parameters: {one + (two - one) * 999_999:,}" in out
    assert "more blocks in layers 1.. not shown" in out


@pytest.fixture
def small_machine(monkeypatch):
    """This machine, with 1 MiB of memory."""
    monkeypatch.setattr(size_module, "machine_memory", lambda device: (1 << 20, "RAM"))


def test_assemble_refuses_a_model_that_cannot_fit_naming_the_key(small_machine, tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: big\nmodel:\n  kind: decoder\n  vocab_size: 259\n  d_model: 64\n  n_heads: 2\n"
                    "  n_layers: 30\n")
    with pytest.raises(ModelSizeError) as info:
        assemble(str(path))
    message = str(info.value)
    # model.ffn is not written: the place is the closest written parent, model:
    assert re.match(r".*big\.yaml:3:3: model\.ffn: building this model needs [\d.]+ MiB \(model\.ffn ", message)
    assert "but this machine has 1.0 MiB of RAM; lower model.ffn, or pass --force-size" in message
    assert assemble(str(path), device="meta").num_parameters() > 1 << 18  # the meta device costs nothing
    assert assemble(str(path), allow_large=True).num_parameters() > 1 << 18


def test_validate_and_train_refuse_a_step_that_cannot_fit(capsys, tmp_path):
    out = tmp_path / "run"
    argv = ["gpt-tiny", "model.n_layers=1000000", "--out-dir", str(out)]
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"error: override 'model\.n_layers=1000000':1:16: model\.n_layers: training this model "
                        r"needs .* TiB .* of RAM; lower model\.n_layers, or pass --force-size .*", err), err
    assert not out.exists()  # refused before the run folder was made
    assert main(["validate", *argv[:2]]) == 2
    assert capsys.readouterr().err.strip() == err.removeprefix("error: ")
    assert main(["validate", *argv[:2], "--force-size"]) == 0


@pytest.mark.parametrize("yaml_model, overrides, expected", [
    ("vocab_size: 256", [], "x.yaml:4:15: model.vocab_size: the default pad_id 256 must be below vocab_size (256)"),
    ("vocab_size: 256", ["model.vocab_size=200"],
     "override 'model.vocab_size=200':1:18: model.vocab_size: the byte tokenizer (train.tokenizer: bytes) "
     "needs vocab_size >= 256"),
])
def test_validate_runs_the_token_checks_train_runs(tmp_path, monkeypatch, capsys, yaml_model, overrides, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.yaml").write_text(f"name: x\nmodel:\n  kind: decoder\n  {yaml_model}\n  d_model: 16\n"
                                     "  n_heads: 2\n  n_layers: 1\n")
    for command in ("validate", "train"):
        assert main([command, "x.yaml", *overrides]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert expected in lines[0] and (command == "validate" or len(lines) == 1), lines
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("value, expected", [
    (10**6 * "9", "model.d_model: integer is too large (limit 2**63 - 1)"),
    ("[" * 100_000, "nested too deeply (over 50 levels)"),
    ("200k keys", "model: too many keys for a spec (over 10000)"),
    (float("inf"), "model.init_std: inf is not allowed: every number in a spec must be finite"),
])
def test_hostile_dicts_are_one_line_spec_errors(value, expected):
    """Refused by the plain-data rules before pydantic sees them (pydantic alone takes minutes on these)."""
    model = {"kind": "decoder", "vocab_size": 259, "d_model": 16, "n_heads": 2, "n_layers": 1}
    if value == "200k keys":
        model.update({f"k{i}": i for i in range(200_000)})
    elif isinstance(value, str) and value.startswith("["):
        nested: list = []
        for _ in range(100_000):
            nested = [nested]
        model["dropout"] = nested
    elif isinstance(value, str):
        model["d_model"] = int(value[:4000])
    else:
        model["init_std"] = value
    with pytest.raises(SpecError) as info:
        load_spec({"name": "x", "model": model})
    assert expected in str(info.value) and "\n" not in str(info.value) and len(str(info.value)) < 400


def _hf_folder(tmp_path):
    model = assemble({"name": "g", "model": {"kind": "decoder", "vocab_size": 64, "max_len": 16, "d_model": 16,
                                             "n_heads": 2, "n_layers": 1, "bos_id": 1, "eos_id": 2}}, seed=0)
    export_hf(model, tmp_path / "hf")
    return tmp_path / "hf"


@pytest.mark.parametrize("changes, expected", [
    ({"n_layer": 10**9}, "gives an invalid spec: model.n_layers: Input should be less than or equal to 1048576"),
    ({"n_layer": 10**6}, "the config describes a model of "),
    ({"n_embd": 10**12}, "gives an invalid spec: model.d_model: Input should be less than or equal to"),
    ({"n_embd": 2**20, "n_head": 2**10}, "the config describes a model of "),
    ({"n_positions": 2**31 - 1}, "the config describes a model of "),
    ({"n_inner": 10**15}, "the config describes a model of "),
])
def test_import_hf_sizes_the_config_before_building(tmp_path, capsys, changes, expected):
    folder = _hf_folder(tmp_path)
    path = folder / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))
    with pytest.raises(StackformError) as info:
        import_hf(folder)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert main(["import-hf", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_checkpoint_too_large_for_this_machine_names_the_way_to_insist(tmp_path, small_machine):
    from stackform.assemble import load, save

    model = assemble("gpt-tiny", overrides=["model.n_layers=2"], device="cpu", allow_large=True)
    save(model, tmp_path / "model.safetensors")
    with pytest.raises(ModelSizeError, match=r"the stored spec: model\.\w+: loading this "
                                             r"checkpoint needs .* load\(\.\.\., allow_large=True\)"):
        load(tmp_path)
    assert torch.equal(load(tmp_path, allow_large=True).embed.weight, model.embed.weight)
