"""Checkpoints: one safetensors file with spec and version; tied weights once; atomic; clear errors."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors import safe_open

from stackform.assemble import CheckpointError, assemble, load, save
from stackform.assemble.checkpoint import DIGEST_KEY, SPEC_KEY, TIED_KEY, atomic_write, digest

TINY = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2"]


@pytest.mark.parametrize("zoo", ["gpt-tiny", "bert-tiny", "transformer-tiny"])
def test_round_trip_is_bitwise_and_needs_only_the_file(zoo, tmp_path):
    model = assemble(zoo, overrides=TINY, seed=1).eval()
    path = save(model, tmp_path / "m.safetensors")
    again = load(path).eval()
    ids = torch.randint(0, 256, (2, 7))
    args = (ids, ids[:, :5]) if zoo == "transformer-tiny" else (ids,)
    assert torch.equal(model(*args), again(*args))
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata()
        assert json.loads(meta["stackform.spec"])["name"] == zoo
        assert meta["stackform.version"]


def test_tied_weights_are_stored_once(tmp_path):
    model = assemble("transformer-tiny", overrides=TINY)  # shared + tied: one matrix for three uses
    path = save(model, tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as handle:
        keys = set(handle.keys())
        tied = json.loads(handle.metadata()["stackform.tied"])
    assert "src_embed.weight" in keys
    assert {"tgt_embed.weight", "head.weight"} <= set(tied) and not ({"tgt_embed.weight", "head.weight"} & keys)
    again = load(path)
    assert again.head.weight is again.src_embed.weight and again.tgt_embed.weight is again.src_embed.weight


def test_untied_head_is_stored(tmp_path):
    model = assemble("gpt-tiny", overrides=TINY + ["model.tie_embeddings=false"])
    again = load(save(model, tmp_path / "m.safetensors"))
    assert again.head.weight is not again.embed.weight
    assert torch.equal(again.head.weight, model.head.weight)


def test_run_folder_loads(tmp_path):
    save(assemble("gpt-tiny", overrides=TINY), tmp_path / "model.safetensors")
    assert load(tmp_path).spec.name == "gpt-tiny"


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write(target, b"old")

    with pytest.raises(TypeError):
        atomic_write(target, object())  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]  # no temp file left behind


@pytest.mark.parametrize("content,expected", [
    (b"", "the file is empty"),
    (b"hello, not a safetensors file at all", "not a readable safetensors file"),
])
def test_bad_files(tmp_path, content, expected):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=expected):
        load(path)


def test_truncated_file(tmp_path):
    path = save(assemble("gpt-tiny", overrides=TINY), tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load(path)


def test_missing_file_and_foreign_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="no stackform spec in the metadata"):
        load(tmp_path / "foreign.safetensors")


def test_spec_that_does_not_match_the_weights(tmp_path):
    from safetensors.torch import load_file, save_file

    path = save(assemble("gpt-tiny", overrides=TINY), tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata()
    tensors = load_file(str(path))
    tensors.pop("stack.final_norm.weight")
    tensors["extra.weight"] = torch.zeros(1)
    tensors["embed.weight"] = torch.zeros(10, 10)
    meta[DIGEST_KEY] = digest(tensors, meta[SPEC_KEY], meta[TIED_KEY])  # a consistent file of the wrong shape
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError) as info:
        load(path)
    message = str(info.value)
    assert "missing: stack.final_norm.weight" in message and "unexpected: extra.weight" in message
    assert "mis-shaped: embed.weight (10, 10) != (259, 32)" in message
