"""Files stackform writes: the mode a plain open() gives (0666 minus the umask), and any legal name.

The temporary file of an atomic write is named after its target cut to a few bytes, so a
target name of up to NAME_MAX (255 bytes) works, and stale temporary files of such a name
are still found and removed.
"""

from __future__ import annotations

import os
import stat

import pytest
import torch

from stackform.assemble import assemble, load, save
from stackform.assemble.checkpoint import atomic_write, remove_stale_temps, write_temp

TINY = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2"]
NAME_MAX = os.pathconf("/", "PC_NAME_MAX") if hasattr(os, "pathconf") else 255


@pytest.fixture
def umask():
    """Set the process umask for one test (and restore it)."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o000])
def test_written_files_get_the_mode_open_would_give(tmp_path, umask, mask):
    umask(mask)
    model = assemble("gpt-tiny", overrides=TINY)
    save(model, tmp_path / "model.safetensors")
    atomic_write(tmp_path / "notes.txt", b"text")
    with open(tmp_path / "plain.txt", "wb"):  # what a plain open() makes under this umask
        pass
    expected = 0o666 & ~mask
    assert _mode(tmp_path / "plain.txt") == expected
    assert _mode(tmp_path / "model.safetensors") == expected
    assert _mode(tmp_path / "notes.txt") == expected


@pytest.mark.parametrize("name", [
    "m" * 240 + ".safetensors",  # 252 characters
    "m" * 243 + ".safetensors",  # 255: NAME_MAX
    "é" * 120 + ".safetensors",  # 132 characters, 252 bytes
])
def test_save_and_load_with_the_longest_legal_names(tmp_path, name):
    assert len(os.fsencode(name)) <= NAME_MAX
    model = assemble("gpt-tiny", overrides=TINY, seed=0)
    path = save(model, tmp_path / name)
    save(model, path)  # over an existing file too
    loaded = load(path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert os.listdir(tmp_path) == [name]  # no temporary file left


def test_stale_temps_of_a_long_name_are_removed(tmp_path):
    path = tmp_path / ("x" * 250 + ".bin")
    tmp = write_temp(path, b"partial")  # a writer that never renamed it ...
    dead = tmp.with_name(tmp.name.replace(f".{os.getpid()}.", ".999999999."))  # ... and is gone
    tmp.rename(dead)
    live = write_temp(path, b"partial")  # a writer still running (this process)
    assert len(dead.name.encode()) < 200
    remove_stale_temps(path)
    assert not dead.exists() and live.exists()
    atomic_write(path, b"whole")
    assert path.read_bytes() == b"whole"
    live.unlink()
