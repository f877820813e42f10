"""Hugging Face folders, malformed by generation: each field of ``config.json`` (of every family)
and of ``model.safetensors.index.json`` changed in type, shape, encoding and nesting, and the
files cut, re-encoded, nested or replaced by folders. ``import-hf`` imports or exits 2 with one
line, and the folder it read is exactly as it was. ``STACKFORM_FUZZ_FULL=1`` runs every variant
(the default runs a seeded sample and every whole-file damage).

Sizes (``n_layer: 10**30``) are the size guards' business and are left out here.
"""

from __future__ import annotations

import json
import os
import random
import shutil

import pytest

from malformed import damaged_bytes, json_documents, one_error_line, snapshot, write_variant
from stackform.assemble import assemble, export_hf, import_hf
from stackform.assemble.cli import main
from stackform.assemble.interop import FAMILIES, InteropError
from stackform.assemble.interop.files import read_config, read_tensors

FULL = os.environ.get("STACKFORM_FUZZ_FULL") == "1"
SAMPLE = 50  # field mutations per family in the default run (the first five families)
SAMPLE_NEWER = 20  # ... and the families added after them
SIZES = ("huge", "2**64", "1e308 * 10")  # mutations that test sizes, not types (see the module docstring)

TINY = {"vocab_size": 61, "max_len": 24, "d_model": 16, "n_heads": 2, "n_layers": 1}
SPECS = {  # one small model per family: the config.json fields each family writes
    "gpt2": {"kind": "decoder", "positional": "learned", "ffn": {"type": "mlp", "activation": "gelu_tanh"}},
    "llama": {"kind": "decoder", "positional": "rope", "norm": "rmsnorm",
              "attention": {"type": "gqa", "n_kv_heads": 1, "bias": False}, "ffn": {"type": "swiglu", "hidden": 32},
              "tie_embeddings": False},
    "bert": {"kind": "encoder", "residual": "post", "norm": {"type": "layernorm", "eps": 1e-12}, "mask": ["padding"],
             "token_type": "learned", "embedding_norm": {"type": "layernorm", "eps": 1e-12}, "head": "mlm",
             "pad_id": 0},
    "t5": {"kind": "encoder_decoder", "positional": {"type": "relative_bias", "num_buckets": 8, "max_distance": 16},
           "norm": "rmsnorm", "attention": {"type": "mha", "bias": False, "scale": 1.0},
           "ffn": {"type": "mlp", "activation": "relu", "bias": False}, "share_embeddings": True,
           "head": {"type": "linear", "rescale": True}, "pad_id": 0, "bos_id": 0, "eos_id": 1},
    "marian": {"kind": "encoder_decoder", "positional": {"type": "sinusoidal", "layout": "halves"},
               "residual": "post", "ffn": {"type": "mlp", "activation": "silu"}, "scale_embeddings": True,
               "share_embeddings": True, "head": {"type": "linear", "bias": True}, "pad_id": 60, "bos_id": 60,
               "eos_id": 0},
}
_ROPE = {"kind": "decoder", "positional": "rope", "tie_embeddings": False, "pad_id": 0, "bos_id": 1, "eos_id": 2}
_GQA = {"type": "gqa", "n_kv_heads": 1, "bias": False}
_ROBERTA = {"kind": "encoder", "positional": {"type": "learned", "offset": 2}, "residual": "post",
            "norm": {"type": "layernorm", "eps": 1e-12}, "mask": ["padding"],
            "token_type": {"type": "learned", "n_types": 1},
            "embedding_norm": {"type": "layernorm", "eps": 1e-12}, "head": "mlm", "pad_id": 1}
_BART = {"kind": "encoder_decoder", "positional": {"type": "learned", "offset": 2}, "residual": "post",
         "ffn": {"type": "mlp", "activation": "gelu", "hidden": 32}, "share_embeddings": True,
         "head": {"type": "linear", "bias": True}, "pad_id": 1, "bos_id": 2, "eos_id": 2,
         "encoder": {"embedding_norm": "layernorm"}, "decoder": {"embedding_norm": "layernorm"}}
NEWER = {  # the families added after the first five, each as its importer writes it (export names the family)
    "qwen2": _ROPE | {"norm": {"type": "rmsnorm", "eps": 1e-6}, "attention": _GQA | {"bias": True, "out_bias": False},
                      "ffn": {"type": "swiglu", "hidden": 32}},
    "qwen3": _ROPE | {"norm": {"type": "rmsnorm", "eps": 1e-6}, "attention": _GQA | {"qk_norm": True},
                      "ffn": {"type": "swiglu", "hidden": 32}},
    "gemma": _ROPE | {"norm": {"type": "rmsnorm", "eps": 1e-6, "unit_offset": True}, "attention": _GQA,
                      "ffn": {"type": "geglu", "activation": "gelu_tanh", "hidden": 32}, "scale_embeddings": True,
                      "tie_embeddings": True},
    "olmo": _ROPE | {"norm": {"type": "layernorm", "weight": False, "bias": False}, "attention": _GQA,
                     "ffn": {"type": "swiglu", "hidden": 32}},
    "phi3": _ROPE | {"norm": "rmsnorm", "attention": _GQA, "ffn": {"type": "swiglu", "hidden": 32}},
    "starcoder2": _ROPE | {"attention": _GQA | {"bias": True}, "ffn": {"type": "mlp", "activation": "gelu_tanh"},
                           "tie_embeddings": True},
    "gpt_bigcode": {"kind": "decoder", "attention": {"type": "mqa", "dropout": 0.1},
                    "ffn": {"type": "mlp", "activation": "gelu_tanh"}, "bos_id": 1, "eos_id": 2},
    "bloom": {"kind": "decoder", "positional": "alibi", "ffn": {"type": "mlp", "activation": "gelu_tanh"},
              "embedding_norm": "layernorm", "pad_id": 0, "bos_id": 1, "eos_id": 2},
    "distilbert": {"kind": "encoder", "residual": "post", "norm": {"type": "layernorm", "eps": 1e-12},
                   "mask": ["padding"], "embedding_norm": {"type": "layernorm", "eps": 1e-12}, "head": "mlm", "pad_id": 0},
    "mt5": SPECS["t5"] | {"ffn": {"type": "geglu", "activation": "gelu_tanh", "hidden": 32, "bias": False},
                          "head": {"type": "linear", "rescale": False}},
    "opt": {"kind": "decoder", "positional": {"type": "learned", "offset": 2},
            "ffn": {"type": "mlp", "activation": "relu", "hidden": 32}, "pad_id": 0, "bos_id": 1, "eos_id": 2},
    "gpt_neo": {"kind": "decoder", "n_layers": 2,
                "attention": {"type": "mha", "bias": False, "out_bias": True, "scale": 1.0},
                "ffn": {"type": "mlp", "activation": "gelu_tanh"}, "bos_id": 1, "eos_id": 2,
                "layers": [{}, {"attention": {"type": "mha", "bias": False, "out_bias": True, "scale": 1.0, "window": 4}}]},
    "roberta": _ROBERTA, "xlm_roberta": _ROBERTA, "camembert": _ROBERTA, "data2vec_text": _ROBERTA,
    "ctrl": {"kind": "decoder", "positional": {"type": "sinusoidal", "layout": "halves"}, "norm": {"type": "layernorm", "eps": 1e-6},
             "ffn": {"type": "mlp", "activation": "relu"}, "scale_embeddings": True, "head": {"type": "linear", "bias": True}},
    "openai-gpt": {"kind": "decoder", "residual": "post", "ffn": {"type": "mlp", "activation": "gelu_tanh"}},
    "biogpt": {"kind": "decoder", "positional": {"type": "learned", "offset": 2}, "scale_embeddings": True,
               "ffn": {"type": "mlp", "activation": "gelu", "hidden": 32}, "pad_id": 1, "bos_id": 0, "eos_id": 2},
    "bart": _BART, "mbart": _BART | {"residual": "pre", "scale_embeddings": True},
    "plbart": _BART | {"scale_embeddings": True}, "mvp": _BART,
    "blenderbot": {k: v for k, v in _BART.items() if k not in ("encoder", "decoder")}
    | {"positional": "learned", "residual": "pre", "pad_id": 0, "bos_id": 1},
    "pegasus": SPECS["marian"] | {"residual": "pre", "ffn": {"type": "mlp", "activation": "relu"}, "pad_id": 0,
                                  "bos_id": 0, "eos_id": 1},
}
SAMPLES = {family: SAMPLE for family in SPECS} | {family: SAMPLE_NEWER for family in NEWER}
SPECS = SPECS | NEWER


def test_every_family_is_fuzzed():
    assert set(SPECS) == {f.name for f in FAMILIES}


def _export(family: str, folder):
    model = {**TINY, **SPECS[family]}
    train = {"train": {"data": {"type": "builtin", "name": "copy"}}} if model["kind"] == "encoder_decoder" else {}
    export_hf(assemble({"name": f"tiny-{family}", "model": model, **train}, seed=0), folder, family=family)
    return folder


def _import(capsys, source, out) -> tuple[int, str]:
    """import-hf ``source``: 0, or 2 with one line; ``source`` unchanged either way."""
    shutil.rmtree(out, ignore_errors=True)
    before = snapshot(source)
    code = main(["import-hf", str(source), "--out", str(out)])
    err = capsys.readouterr().err
    assert code in (0, 2) and (code == 0 or one_error_line(err)), err
    assert snapshot(source) == before
    return code, err


def _sampled(variants: list, seed: int, n: int) -> list:
    """Every variant (FULL), or ``n`` of the field mutations and every whole-file damage."""
    if FULL:
        return variants
    fields = [v for v in variants if ":" in v[0]]
    whole = [v for v in variants if ":" not in v[0]]
    return random.Random(seed).sample(fields, min(n, len(fields))) + whole


@pytest.mark.parametrize("family", sorted(SPECS))
def test_every_malformed_config_json_imports_or_is_one_line(family, tmp_path, capsys):
    clean = _export(family, tmp_path / "clean")
    config = json.loads((clean / "config.json").read_text())
    variants = [(label, data) for label, data in json_documents(config, random.Random(0))
                if not label.endswith(SIZES)] + [("a folder", None)]
    refused = 0
    for label, data in _sampled(variants, sorted(SPECS).index(family), SAMPLES[family]):
        source = tmp_path / "hf"
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(clean, source)
        write_variant(source / "config.json", data)
        code, err = _import(capsys, source, tmp_path / "out")
        refused += code == 2
        if ":" not in label:  # the whole file damaged: never a config
            assert code == 2 and "config.json" in err, (label, err)
    assert refused >= 10


def _sharded(tmp_path):
    """The gpt2 folder with its weights in two shards and an index."""
    clean = _export("gpt2", tmp_path / "clean")
    tensors = read_tensors(clean)
    names = sorted(tensors)
    from safetensors.torch import save_file

    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for shard, part in shards.items():
        save_file({n: tensors[n].contiguous() for n in part}, str(clean / shard), metadata={"format": "pt"})
    (clean / "model.safetensors").unlink()
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
             "weight_map": {n: shard for shard, part in shards.items() for n in part}}
    (clean / "model.safetensors.index.json").write_text(json.dumps(index))
    return clean, index


def test_every_malformed_index_imports_or_is_one_line(tmp_path, capsys):
    clean, index = _sharded(tmp_path)
    assert _import(capsys, clean, tmp_path / "out")[0] == 0
    variants = list(json_documents(index, random.Random(0), per_field=None if FULL else 6))
    variants.append(("a folder", None))
    refused = 0
    for label, data in _sampled(variants, 1, 60):
        source = tmp_path / "hf"
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(clean, source)
        write_variant(source / "model.safetensors.index.json", data)
        code, err = _import(capsys, source, tmp_path / "out")
        refused += code == 2
        if label.startswith("weight_map:") or ":" not in label:
            assert code == 2 and "index.json" in err, (label, err)
    assert refused >= 20


@pytest.mark.parametrize("name", ["../clean/model-00001-of-00002.safetensors", "/etc/passwd", "", "..", "a\\b"])
def test_an_index_names_only_files_in_its_folder(name, tmp_path):
    """A shard name is a file name in the folder: a path that leads out of it is refused unread."""
    clean, index = _sharded(tmp_path)
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = name
    (clean / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(InteropError, match=r"weight_map: .* is not a file name in this folder"):
        read_tensors(clean)


def test_config_errors_name_the_place(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    cases = {
        b'{"model_type": "gpt2",\n "n_layer": }': r"config.json:2:13: not valid JSON \(Expecting value\)",
        b"[" * 100_000: r"config.json: not a config.json \(JSON nested too deeply\)",
        b"9" * 5000: r"config.json: not a config.json \(Exceeds the limit \(4300 digits\)",
        b'{"a": "\xff"}': r"config.json: not UTF-8 \(byte offset 7",
        b"[1, 2]": r"config.json: expected a JSON object, got an array",
    }
    for data, pattern in cases.items():
        (folder / "config.json").write_bytes(data)
        with pytest.raises(InteropError, match=pattern):
            read_config(folder)
    (folder / "config.json").write_bytes(b'\xef\xbb\xbf{"model_type": "gpt2"}')  # a byte-order mark is fine
    assert read_config(folder) == {"model_type": "gpt2"}


def test_a_regrouped_tensor_of_another_size_is_one_line(tmp_path):
    """GPT-BigCode's c_attn is [q | k | v] with multi_query and per head without: a multi-query file whose config
    says otherwise cannot even be regrouped, and is refused like any tensor that does not fit (found by the fuzz)."""
    folder = _export("gpt_bigcode", tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"multi_query": False}))
    with pytest.raises(InteropError, match=r"c_attn\.weight \(32, 16\) do not fit the config \(stackform's "
                                           r"stack\.layers\.0\.self_attn\.qkv\.weight needs \(48, 16\)\)"):
        import_hf(folder)
