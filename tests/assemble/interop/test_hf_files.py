"""Import/export without transformers: folders written by export_hf read back to the same model,
and every bad folder or unfit spec is one clear StackformError line.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from stackform.assemble import StackformError, assemble, export_hf, import_hf, save
from stackform.assemble.cli import main
from stackform.assemble.interop import FAMILIES, InteropError, find_family

TINY = {"vocab_size": 61, "max_len": 24, "d_model": 32, "n_heads": 4, "n_layers": 2}
SPECS = {
    "gpt2": {"kind": "decoder", "positional": "learned", "norm": {"type": "layernorm"},
             "ffn": {"type": "mlp", "activation": "gelu_tanh", "hidden": 64}, "bos_id": 1, "eos_id": 2},
    "llama": {"kind": "decoder", "positional": {"type": "rope", "scaling": {"type": "llama3", "factor": 4.0}},
              "norm": "rmsnorm", "attention": {"type": "gqa", "n_kv_heads": 2, "bias": False},
              "ffn": {"type": "swiglu", "hidden": 48}, "tie_embeddings": False},
    "bert": {"kind": "encoder", "residual": "post", "norm": {"type": "layernorm", "eps": 1e-12},
             "ffn": {"type": "mlp", "hidden": 64}, "mask": ["padding"], "token_type": "learned",
             "embedding_norm": {"type": "layernorm", "eps": 1e-12}, "head": "mlm", "pad_id": 0},
    "t5": {"kind": "encoder_decoder", "positional": {"type": "relative_bias", "num_buckets": 8, "max_distance": 16},
           "norm": "rmsnorm", "attention": {"type": "mha", "bias": False, "scale": 1.0},
           "ffn": {"type": "mlp", "activation": "relu", "hidden": 64, "bias": False}, "share_embeddings": True,
           "head": {"type": "linear", "rescale": True}, "pad_id": 0, "bos_id": 0, "eos_id": 1},
    "marian": {"kind": "encoder_decoder", "positional": {"type": "sinusoidal", "layout": "halves"},
               "residual": "post", "ffn": {"type": "mlp", "activation": "silu", "hidden": 64},
               "scale_embeddings": True, "share_embeddings": True, "head": {"type": "linear", "bias": True},
               "pad_id": 60, "bos_id": 60, "eos_id": 0},
    "roberta": {"kind": "encoder", "positional": {"type": "learned", "offset": 4}, "residual": "post",
                "norm": {"type": "layernorm", "eps": 1e-5}, "mask": ["padding"],
                "token_type": {"type": "learned", "n_types": 1},
                "embedding_norm": {"type": "layernorm", "eps": 1e-5}, "head": {"type": "mlm", "eps": 1e-5}, "pad_id": 3},
    "bart": {"kind": "encoder_decoder", "positional": {"type": "learned", "offset": 2}, "residual": "post",
             "ffn": {"type": "mlp", "activation": "gelu", "hidden": 64}, "share_embeddings": True,
             "encoder": {"embedding_norm": "layernorm", "n_layers": 2},
             "decoder": {"embedding_norm": "layernorm", "n_layers": 1},
             "head": {"type": "linear", "bias": True}, "pad_id": 1, "bos_id": 2, "eos_id": 2, "n_layers": None},
    "mbart": {"kind": "encoder_decoder", "positional": {"type": "learned", "offset": 2}, "residual": "pre",
              "ffn": {"type": "mlp", "activation": "gelu", "hidden": 64}, "scale_embeddings": True,
              "encoder": {"embedding_norm": "layernorm"}, "decoder": {"embedding_norm": "layernorm"},
              "head": {"type": "linear", "bias": True},
              "tie_embeddings": False, "pad_id": 1, "bos_id": 0, "eos_id": 2},
}


def _model(family: str, **changes):
    model = {**TINY, **SPECS[family], **changes}
    train = {"train": {"data": {"type": "builtin", "name": "copy"}}} if model["kind"] == "encoder_decoder" else {}
    net = assemble({"name": f"tiny-{family}", "model": model, **train}, seed=0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # biases and norms away from 0 and 1
    return net.eval()


def _args(model):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 59, (2, 7), generator=g)
    return (ids, ids[:, :5]) if model.spec.model.kind == "encoder_decoder" else (ids,)


@pytest.mark.parametrize("family", sorted(SPECS))
def test_export_then_import_is_the_same_model(family, tmp_path):
    model = _model(family)
    assert find_family(model.spec.model).name == family
    export_hf(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] in next(f for f in FAMILIES if f.name == family).model_types
    again = import_hf(tmp_path)
    with torch.no_grad():
        assert torch.equal(again(*_args(again)), model(*_args(model)))


def test_multi_query_attention_exports_as_one_kv_head(tmp_path):
    model = _model("llama", attention={"type": "mqa", "bias": False})
    export_hf(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["num_key_value_heads"] == 1
    again = import_hf(tmp_path)
    assert again.spec.model.attention.params.n_kv_heads == 1
    with torch.no_grad():
        assert torch.equal(again(*_args(again)), model(*_args(model)))


def test_cli_import_and_export(tmp_path, capsys):
    model = _model("llama")
    save(model, tmp_path / "ckpt.safetensors")
    assert main(["export-hf", str(tmp_path / "ckpt.safetensors"), "--out", str(tmp_path / "hf")]) == 0
    assert main(["import-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back"), "--name", "again"]) == 0
    assert (tmp_path / "back" / "spec.yaml").read_text().startswith("# yaml-language-server: $schema=")
    assert set(load_file(tmp_path / "back" / "model.safetensors")) == set(model.state_dict())
    assert main(["import-hf", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "missing: no such folder" in capsys.readouterr().err


def _folder(tmp_path, family="gpt2"):
    export_hf(_model(family), tmp_path / "hf")
    return tmp_path / "hf"


def _edit_config(folder, **changes):
    path = folder / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def _edit_tensors(folder, edit):
    path = folder / "model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


def _error(folder) -> str:
    with pytest.raises(InteropError) as info:
        import_hf(folder)
    assert isinstance(info.value, StackformError) and "\n" not in str(info.value)
    return str(info.value)


def test_not_a_model_folder(tmp_path):
    assert "no config.json" in _error(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    assert "config.json:1:2: not valid JSON" in _error(tmp_path)


def test_unknown_model_type_names_the_supported_ones(tmp_path):
    folder = _folder(tmp_path)
    _edit_config(folder, model_type="gpt_neox")
    supported = ", ".join(sorted(t for f in FAMILIES for t in f.model_types))  # bert, gemma, gpt2, llama, ...
    assert f"model_type 'gpt_neox' is not supported (supported: {supported})" in _error(folder)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "pytorch_model.bin.index.json"])
def test_pickled_weights_are_refused(tmp_path, name):
    """Whole or sharded (pytorch_model-00001-of-00002.bin + its index): never unpickled, and said so."""
    folder = _folder(tmp_path)
    (folder / "model.safetensors").rename(folder / name)
    assert f"has {name} but no model.safetensors; stackform reads safetensors only" in _error(folder)


def test_missing_unexplained_and_misshaped_tensors(tmp_path):
    folder = _folder(tmp_path)
    _edit_tensors(folder, lambda t: t.pop("transformer.h.1.ln_2.bias"))
    assert "missing tensors for a gpt2 model with this config: transformer.h.1.ln_2.bias" in _error(folder)
    _edit_tensors(folder, lambda t: t.update({"transformer.h.1.ln_2.bias": torch.zeros(32), "extra.w": torch.zeros(1)}))
    assert "tensors this gpt2 config does not explain: extra.w" in _error(folder)
    _edit_tensors(folder, lambda t: (t.pop("extra.w"), t.update({"transformer.wpe.weight": torch.zeros(5, 32)})))
    assert "transformer.wpe.weight (5, 32) do not fit the config" in _error(folder)


def test_unsupported_settings_name_the_key(tmp_path):
    folder = _folder(tmp_path, "llama")
    _edit_config(folder, rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0})
    assert "rope type 'yarn' is not supported for llama (supported: default, linear, llama3)" in _error(folder)
    _edit_config(folder, rope_parameters=None, rope_scaling=None, hidden_act="mish")
    assert "hidden_act 'mish' is not supported" in _error(folder)
    _edit_config(folder, hidden_act="silu", num_hidden_layers=None)
    assert "missing 'num_hidden_layers' (a llama config needs it)" in _error(folder)
    _edit_config(folder, num_hidden_layers=2, rope_parameters={"rope_type": "linear", "rope_theta": 10000.0})
    assert "rope type linear needs a 'factor'" in _error(folder)
    _edit_config(folder, rope_parameters="fast")
    assert "not a readable llama config (AttributeError" in _error(folder)


def test_config_that_gives_an_invalid_spec(tmp_path):
    folder = _folder(tmp_path, "llama")
    _edit_config(folder, num_key_value_heads=3)
    assert "gives an invalid spec: model.attention: n_heads (4) must be divisible by n_kv_heads (3)" in _error(folder)


def test_sharded_index_with_a_missing_shard(tmp_path):
    folder = _folder(tmp_path)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "shard-1.safetensors"}}))
    assert "lists shards that are not in the folder: shard-1.safetensors" in _error(folder)


def test_specs_no_family_holds_are_refused_with_the_closest_difference(tmp_path):
    model = _model("gpt2", attention={"type": "mha", "window": 4})
    with pytest.raises(InteropError, match=r"the closest, gpt2, differs at model\.decoder\.layers\.0\.attention\.window"):
        export_hf(model, tmp_path)
    with pytest.raises(InteropError, match="does not fit the t5 family"):
        export_hf(_model("gpt2"), tmp_path, family="t5")


@pytest.mark.parametrize("spec,family,problem", [
    ("gpt-tiny", "bert", "gpt-tiny is a decoder; bert needs an encoder"),
    ("gpt-tiny", "t5", "gpt-tiny is a decoder; t5 needs an encoder-decoder"),
    ("gpt-tiny", "gpt2", "gpt-tiny's model.positional is rope; gpt2 needs learned"),
    ("bert-tiny", "llama", "bert-tiny is an encoder; llama needs a decoder"),
    ("transformer-tiny", "t5", "transformer-tiny's model.positional is sinusoidal; t5 needs relative_bias"),
    ("transformer-tiny", "bert", "transformer-tiny is an encoder-decoder; bert needs an encoder"),
])
def test_a_family_that_does_not_fit_says_what_does_not(spec, family, problem, tmp_path, capsys):
    """Not '(KeyError: None)' or "(AttributeError: ... 'scaling')": the family and what in the spec it lacks."""
    net = assemble(spec, n_layers=1, d_model=32, n_heads=2, seed=0)
    with pytest.raises(InteropError) as info:
        export_hf(net, tmp_path / "lib", family=family)
    assert str(info.value) == f"cannot export: the spec does not fit the {family} family: {problem}"
    save(net, tmp_path / "model.safetensors")
    assert main(["export-hf", str(tmp_path / "model.safetensors"), "--out", str(tmp_path / "hf"),
                 "--family", family]) == 2
    assert capsys.readouterr().err == f"error: --family {family}: {problem}\n"
    assert not (tmp_path / "hf").exists() and not (tmp_path / "lib").exists()


def test_an_unknown_family_names_the_flag(tmp_path, capsys):
    save(_model("gpt2"), tmp_path / "model.safetensors")
    assert main(["export-hf", str(tmp_path / "model.safetensors"), "--out", str(tmp_path / "hf"),
                 "--family", "gtp2"]) == 2
    families = ", ".join(f.name for f in FAMILIES)  # gpt2, bert, llama, t5, marian, ...
    assert capsys.readouterr().err == f"error: --family gtp2: unknown family (families: {families})\n"


def _snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("held", ["run", "import", "spec"])
def test_import_never_replaces_a_spec_or_checkpoint_without_overwrite(tmp_path, capsys, held):
    export_hf(_model("gpt2"), tmp_path / "hf")
    out = tmp_path / "out"
    out.mkdir()
    if held == "spec":
        (out / "spec.yaml").write_text("name: mine\n")
    else:
        save(_model("gpt2"), out / "model.safetensors")
        if held == "run":
            (out / "train_state.safetensors").write_bytes(b"state")
    before = _snapshot(out)
    assert main(["import-hf", str(tmp_path / "hf"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} already holds" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert _snapshot(out) == before
    assert main(["import-hf", str(tmp_path / "hf"), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "train_state.safetensors").exists()  # the replaced run's state: never resumed with the import
    if held == "run":
        assert main(["train", "--resume", str(out)]) == 2
        assert "not a run folder" in capsys.readouterr().err


def test_import_out_that_is_a_file(tmp_path, capsys):
    export_hf(_model("gpt2"), tmp_path / "hf")
    (tmp_path / "file").write_text("x")
    assert main(["import-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "file")]) == 2
    assert "file: exists and is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("held", ["checkpoint", "run"])
def test_export_never_replaces_a_stackform_checkpoint(tmp_path, held):
    out = tmp_path / "run"
    save(_model("gpt2"), out / "model.safetensors")
    if held == "run":
        (out / "model.safetensors").unlink()
        (out / "train_state.safetensors").write_bytes(b"state")
    before = _snapshot(out)
    with pytest.raises(InteropError, match="holds a stackform checkpoint or run"):
        export_hf(_model("gpt2"), out)
    assert _snapshot(out) == before
    export_hf(_model("gpt2"), tmp_path / "hf")
    export_hf(_model("gpt2"), tmp_path / "hf")  # an earlier export may be replaced
