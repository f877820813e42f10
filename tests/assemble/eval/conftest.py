"""Tiny trained runs (one per model kind, trained once per session) for the evaluation tests."""

from __future__ import annotations

import pytest

from stackform.assemble import train

MODEL = {"d_model": 32, "n_heads": 2, "n_layers": 1, "pad_id": 256, "bos_id": 257, "eos_id": 258}
TRAIN = {"steps": 4, "batch_size": 4, "seq_len": 16, "eval_every": 2, "eval_steps": 2, "log_every": 2,
         "schedule": {"type": "constant", "warmup": 1}, "samples": 0, "keep_best": True}


def tiny(kind: str) -> dict:
    model = {"kind": kind, "vocab_size": 259, "max_len": 24, **MODEL}
    extra: dict = {}
    if kind == "encoder":
        model.update(vocab_size=260, mask_id=259)
        extra = {"task": "mlm"}
    if kind == "encoder_decoder":
        extra = {"task": "seq2seq", "seq_len": None,
                 "data": {"type": "builtin", "name": "reverse", "n_examples": 100, "n_val": 12, "max_length": 6}}
    return {"name": f"eval-{kind}", "model": model, "train": {**TRAIN, **extra}}


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("STACKFORM_NO_BAR", "1")
    monkeypatch.setenv("STACKFORM_CACHE", str(tmp_path_factory.getbasetemp() / "eval-cache"))


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """{kind: run folder} of three tiny runs, trained on first use."""
    made: dict = {}

    def get(kind: str):
        if kind not in made:
            folder = tmp_path_factory.mktemp(f"run-{kind}")
            mp = pytest.MonkeyPatch()
            mp.setenv("STACKFORM_CACHE", str(tmp_path_factory.getbasetemp() / "eval-cache"))
            try:
                train(tiny(kind), out_dir=folder / "run", quiet=True)
            finally:
                mp.undo()
            made[kind] = folder / "run"
        return made[kind]

    return get
