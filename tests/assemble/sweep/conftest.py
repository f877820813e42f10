"""A tiny base spec and sweep files for the sweep tests: a few thousand parameters, a few steps."""

from __future__ import annotations

import textwrap

import pytest
import yaml

BASE = {"name": "base", "model": {"kind": "decoder", "vocab_size": 259, "max_len": 16, "d_model": 16, "n_heads": 2,
                                  "n_layers": 1, "positional": "rope", "ffn": {"type": "swiglu", "hidden": 32},
                                  "pad_id": 256, "bos_id": 257, "eos_id": 258},
        "train": {"steps": 4, "batch_size": 2, "eval_every": 2, "eval_steps": 1, "log_every": 1, "samples": 0,
                  "schedule": {"warmup": 1}, "device": "cpu"}}


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch, tmp_path):
    monkeypatch.setenv("STACKFORM_NO_BAR", "1")
    monkeypatch.setenv("STACKFORM_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def sweep_file(tmp_path, monkeypatch):
    """``sweep_file(text) -> path``: a sweep file beside a tiny base.yaml, in the current folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))

    def write(text: str, name: str = "sweep.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return write
