"""Checkpoint faults: killed writers, truncated, corrupted and hostile files.

Saves are atomic (a SIGKILL mid-save leaves the previous checkpoint), every damaged
file gives one CheckpointError (never a wrong model), and loading never runs code.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import sys
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from stackform.assemble import CheckpointError, StackformError, assemble, load, save
from stackform.assemble.checkpoint import DIGEST_KEY, SPEC_KEY, TIED_KEY, digest

TINY = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2"]


def _fill(model: torch.nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)


def _version(model: torch.nn.Module) -> float:
    """The one value every parameter holds (a checkpoint saved by ``_fill`` + ``save``)."""
    values = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).unique()
    assert len(values) == 1, f"a mix of versions: {values[:5].tolist()}"
    return float(values[0])


def _temps(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith(".model.safetensors.") and n.endswith(".tmp"))


def _wait_for_temp(folder, pid: int, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any(f".{pid}." in name for name in _temps(folder)):
        pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sigkill_while_saving_never_loses_the_previous_checkpoint(tmp_path):
    model = assemble("gpt-tiny", overrides=["model.d_model=64", "model.n_layers=2"])
    path = tmp_path / "model.safetensors"
    _fill(model, 0.0)
    save(model, path)
    rng, last, kills_mid_save = random.Random(0), 0.0, 0
    for kill in range(30):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: save versions last+1, last+2, ... into the same path until killed
            try:
                os.close(read)
                os.write(write, b"go")
                version = last + 1
                while True:
                    _fill(model, version)
                    save(model, path)
                    version += 1
            finally:
                os._exit(0)
        os.close(write)
        os.read(read, 2)
        os.close(read)
        if kill % 2:
            time.sleep(rng.uniform(0.0, 0.04))  # any moment
        else:
            _wait_for_temp(tmp_path, pid)  # a moment while the child writes its temporary file
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        kills_mid_save += bool(_temps(tmp_path))
        version = _version(load(path))  # the file always loads, and holds one whole version
        assert version == int(version) and version >= last
        last = version
        assert len(_temps(tmp_path)) <= 1  # the next save removes what a killed writer left
    assert last > 0 and kills_mid_save >= 5  # saves happened, and kills hit them mid-write
    save(model, path)
    assert _temps(tmp_path) == []


def test_temp_files_of_live_writers_are_kept(tmp_path):
    path = tmp_path / "model.safetensors"
    dead = tmp_path / ".model.safetensors.999999999.abc123.tmp"  # beyond any pid: its writer is gone
    live = tmp_path / f".model.safetensors.{os.getpid()}.xyz789.tmp"
    other = tmp_path / ".other.safetensors.999999999.abc123.tmp"
    for f in (dead, live, other):
        f.write_bytes(b"partial")
    save(assemble("gpt-tiny", overrides=TINY), path)
    assert not dead.exists() and live.exists() and other.exists()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = assemble("gpt-tiny", overrides=TINY, seed=0)
    path = save(model, tmp_path_factory.mktemp("ckpt") / "model.safetensors")
    return model, path.read_bytes()


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return a.spec == b.spec and sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_every_truncation_is_one_clear_error(saved, tmp_path):
    _, data = saved
    header = 8 + int.from_bytes(data[:8], "little")
    cuts = sorted({*range(0, 12), *range(12, header, max(1, header // 15)), header, header + 1,
                   *range(header, len(data), max(1, (len(data) - header) // 20)), len(data) - 1})
    path = tmp_path / "cut.safetensors"
    for cut in cuts:
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as info:
            load(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value), cut


def test_corrupted_bytes_never_load_silently_wrong(saved, tmp_path):
    model, data = saved
    header = 8 + int.from_bytes(data[:8], "little")
    rng = random.Random(1)
    spots = [rng.randrange(0, header) for _ in range(40)] + [rng.randrange(header, len(data)) for _ in range(20)]
    path = tmp_path / "flipped.safetensors"
    errors = 0
    for spot in spots:
        damaged = bytearray(data)
        damaged[spot] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(damaged))
        try:
            again = load(path)
        except CheckpointError as exc:
            errors += 1
            assert "\n" not in str(exc)
            continue
        assert _same(model, again), f"byte {spot}: loaded a different model without an error"
    assert errors >= 50  # only bytes that change nothing (padding, the 'format' tag) may pass


def test_weight_corruption_is_detected_by_the_checksum(saved, tmp_path):
    _, data = saved
    damaged = bytearray(data)
    damaged[-3] ^= 0x40  # inside the last tensor: safetensors itself cannot notice
    path = tmp_path / "m.safetensors"
    path.write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match="corrupted .its SHA-256 differs"):
        load(path)


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("content,expected", [
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a readable safetensors file"),
    (b"PK\x03\x04" + bytes(100), "not a readable safetensors file"),  # a zip, as torch.save writes
    (pickle.dumps(_Boom()), "not a readable safetensors file"),
    ((10**12).to_bytes(8, "little") + b"{}", "not a readable safetensors file"),  # a header length beyond the file
    (b"\x02\x00\x00\x00\x00\x00\x00\x00[]", "not a readable safetensors file"),  # a header that is not a map
    (bytes(8), "not a readable safetensors file"),
])
def test_foreign_files_are_one_clear_error_and_run_nothing(tmp_path, monkeypatch, content, expected):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "m.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=expected):
        load(path)
    assert not (tmp_path / "PWNED").exists()


def _rewrite(path, edit_spec=None, tied=None, tensors=None) -> None:
    """Rewrite a checkpoint with an edited spec / tied map / tensors and a matching checksum."""
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata()
    tensors = tensors if tensors is not None else load_file(str(path))
    if edit_spec is not None:
        spec = json.loads(meta[SPEC_KEY])
        edit_spec(spec)
        meta[SPEC_KEY] = json.dumps(spec)
    if tied is not None:
        meta[TIED_KEY] = tied
    meta[DIGEST_KEY] = digest(tensors, meta[SPEC_KEY], meta[TIED_KEY])
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize("edit,expected", [
    (lambda s: s["model"].update(d_model=48), "the weights do not match the spec: "),
    (lambda s: s["model"].update(n_layers=2), "missing: stack.layers.1."),
    (lambda s: s["model"].update(vocab_size=260), "mis-shaped: embed.weight (259, 32) != (260, 32)"),
    (lambda s: s["model"].update(vocab_size=2**40), "model.vocab_size: Input should be less than or equal to"),
    (lambda s: s["model"].update(vocab_size=2**30), "stored numbers (model.vocab_size is 1073741824) but the file"),
    (lambda s: s["model"].update(n_layers=10**6), "stored numbers (model.n_layers is 1000000) but the file holds"),
    (lambda s: s["model"].update(attention="mah"), "the spec stored in"),
    (lambda s: s.clear(), "required key 'name' is missing"),
])
def test_a_spec_that_does_not_fit_the_weights(saved, tmp_path, edit, expected):
    path = tmp_path / "m.safetensors"
    path.write_bytes(saved[1])
    _rewrite(path, edit_spec=edit)
    with pytest.raises(CheckpointError) as info:
        load(path)  # huge sizes: refused from arithmetic alone, nothing allocated
    assert expected in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("spec_text,expected", [
    ("{not json", "the spec in the metadata is not valid JSON"),
    ("[1, 2]", "a spec must be a mapping of keys, not list"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
])
def test_bad_spec_metadata(saved, tmp_path, spec_text, expected):
    path = tmp_path / "m.safetensors"
    path.write_bytes(saved[1])
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata()
    tensors = load_file(str(path))
    meta = {**meta, SPEC_KEY: spec_text, DIGEST_KEY: digest(tensors, spec_text, meta[TIED_KEY])}
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=expected):
        load(path)


@pytest.mark.parametrize("tied", ["[1]", '{"head.weight": 3}', "{oops"])
def test_bad_tied_metadata(saved, tmp_path, tied):
    path = tmp_path / "m.safetensors"
    path.write_bytes(saved[1])
    _rewrite(path, tied=tied)
    with pytest.raises(CheckpointError, match="stackform.tied.* is not a name -> name map"):
        load(path)


PLUGIN = "stackform_test_untrusted_plugin"


def test_loading_never_imports_plugins_named_in_the_file(saved, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / f"{PLUGIN}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, PLUGIN, raising=False)
    path = tmp_path / "m.safetensors"
    path.write_bytes(saved[1])
    _rewrite(path, edit_spec=lambda s: s.update(plugins=[PLUGIN]))
    with pytest.raises(CheckpointError) as info:
        load(path)
    message = str(info.value)
    assert f"needs plugins: {PLUGIN}" in message and f"import {PLUGIN}" in message
    assert not marker.exists() and PLUGIN not in sys.modules  # nothing was imported
    __import__(PLUGIN)  # the user trusts it and imports it on purpose
    assert marker.exists() and load(path).spec.plugins == [PLUGIN]


def test_an_installed_entry_point_plugin_counts_as_imported(saved, tmp_path, monkeypatch):
    """A spec that lists an installed entry-point module under plugins: loads in a fresh process:
    the registry imports entry points on first use, so loading checks after that, not before."""
    import stackform.registry.core as core

    name = PLUGIN + "_installed"
    (tmp_path / f"{name}.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delenv("STACKFORM_NO_PLUGINS", raising=False)
    monkeypatch.setitem(core._state, "plugins", False)  # as in a fresh process
    monkeypatch.setattr(core, "load_entry_point_plugins", lambda: __import__(name))  # the installed entry point
    path = tmp_path / "m.safetensors"
    path.write_bytes(saved[1])
    _rewrite(path, edit_spec=lambda s: s.update(plugins=[name]))
    assert load(path).spec.plugins == [name]


@pytest.mark.parametrize("kwargs, message", [
    (dict(device="nonsense"), r"load\(device=\.\.\.\): 'nonsense' is not a torch device"),
    (dict(device="cuda:99"), r"load\(device=\.\.\.\): 'cuda:99' is not available here \(.+\)$"),
    (dict(dtype="float16"), r"load\(dtype=\.\.\.\): 'float16' is not a floating-point torch dtype"),
    (dict(dtype=torch.int64), r"load\(dtype=\.\.\.\): torch\.int64 is not a floating-point torch dtype"),
])
def test_bad_load_arguments_are_one_clear_error(saved, tmp_path, kwargs, message):
    (tmp_path / "model.safetensors").write_bytes(saved[1])
    with pytest.raises(StackformError, match=message):
        load(tmp_path, **kwargs)


def test_saving_onto_a_folder_is_refused_and_leaves_it(saved, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(CheckpointError, match=r"run: is a folder; save to a file in it, e\.g\. .*run/model\.safetensors"):
        save(saved[0], folder)
    assert folder.is_dir() and not any(folder.iterdir())


@pytest.mark.parametrize("kwargs, message", [
    (dict(device="nonsense"), r"assemble\(device=\.\.\.\): 'nonsense' is not a torch device"),
    (dict(device="cuda:99"), r"assemble\(device=\.\.\.\): 'cuda:99' is not available here \(.+\)$"),
    (dict(dtype="bf16"), r"assemble\(dtype=\.\.\.\): 'bf16' is not a floating-point torch dtype"),
])
def test_bad_assemble_arguments_are_one_clear_error(kwargs, message):
    with pytest.raises(StackformError, match=message):
        assemble("gpt-tiny", overrides=["model.n_layers=1"], **kwargs)
