"""Tiny specs for training tests: a few thousand parameters, a few steps."""

from __future__ import annotations

import pytest

TINY_MODEL = {"d_model": 32, "n_heads": 2, "n_layers": 2, "dropout": 0.1, "pad_id": 256, "bos_id": 257, "eos_id": 258}


def tiny_spec(kind: str = "decoder", **train) -> dict:
    """A dict spec: byte-level, d_model 32, 2 layers, dropout 0.1; ``train`` fields override."""
    model = {"kind": kind, "vocab_size": 259, "max_len": 40, **TINY_MODEL}
    base = {"steps": 6, "batch_size": 4, "seq_len": 16, "eval_every": 3, "eval_steps": 2, "log_every": 2,
            "schedule": {"type": "cosine", "warmup": 2}, "samples": 2, "sample_tokens": 8}
    if kind == "encoder":
        model.update(vocab_size=260, mask_id=259)
        base.update(task="mlm")
    if kind == "encoder_decoder":
        model.update(max_len=24)
        base.update(task="seq2seq", seq_len=None,
                    data={"type": "builtin", "name": "reverse", "n_examples": 200, "n_val": 16, "max_length": 8})
    return {"name": f"tiny-{kind}", "model": model, "train": {**base, **train}}


@pytest.fixture
def make_spec():
    """``make_spec(kind="decoder", **train_fields) -> dict`` (see tiny_spec)."""
    return tiny_spec


@pytest.fixture(autouse=True)
def _no_bar(monkeypatch, tmp_path):
    monkeypatch.setenv("STACKFORM_NO_BAR", "1")
    monkeypatch.setenv("STACKFORM_CACHE", str(tmp_path / "cache"))
