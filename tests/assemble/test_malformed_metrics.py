"""metrics.jsonl, malformed by generation: every field of a record changed in type, shape, size,
encoding and nesting, and the file cut, re-encoded, nested or replaced by a folder. ``compare``
and ``train --resume`` (the two commands that read it) exit 0, or 2 with one line and the run
folder exactly as it was. ``STACKFORM_FUZZ_FULL=1`` runs every variant through both commands
(the default samples them, to stay within seconds).
"""

from __future__ import annotations

import json
import os
import random
import shutil

import pytest

from malformed import damaged_bytes, json_documents, one_error_line, snapshot, write_variant
from stackform.assemble import train
from stackform.assemble.cli import main
from stackform.assemble.train.metrics_file import MetricsError, read_metrics

FULL = os.environ.get("STACKFORM_FUZZ_FULL") == "1"
SPEC = {
    "name": "tiny", "model": {"kind": "decoder", "vocab_size": 259, "max_len": 24, "d_model": 16, "n_heads": 2,
                              "n_layers": 1, "pad_id": 256, "bos_id": 257, "eos_id": 258},
    "train": {"steps": 4, "batch_size": 2, "seq_len": 8, "eval_every": 2, "eval_steps": 1, "log_every": 1,
              "schedule": {"type": "constant", "warmup": 0}, "samples": 0},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("metrics") / "run"
    os.environ["STACKFORM_NO_BAR"] = "1"
    train(SPEC, out_dir=folder, quiet=True)
    return folder


def variants(metrics: bytes) -> list[tuple[str, bytes | None]]:
    """(label, new metrics.jsonl bytes or None for a folder): each record field of the second line
    mutated, that line damaged as a whole, the file damaged as a whole."""
    lines = metrics.splitlines(keepends=True)
    record = json.loads(lines[1])
    out = []
    for label, line in json_documents(record, random.Random(0)):
        out.append((f"line 2: {label}", b"".join(lines[:1]) + line + b"\n" + b"".join(lines[2:])))
    out += [(f"file: {label}", data) for label, data in damaged_bytes(metrics)]
    out.append(("file: a folder", None))
    return out


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def _check(capsys, run, argv: list[str]) -> int:
    """Run ``argv``: 0, or 2 with one line and the run folder unchanged."""
    before = snapshot(run)
    code, err = _run(capsys, argv)
    assert code in (0, 2), err
    if code == 2:
        assert one_error_line(err), err
        assert snapshot(run) == before, err
    return code


def test_every_malformed_metrics_file_is_read_or_refused_in_one_line(trained, tmp_path, capsys):
    """compare draws or refuses every variant in one line; --resume refuses exactly what the reader
    refuses (checked before any file of the run is written) and resumes the others."""
    good = (trained / "metrics.jsonl").read_bytes()
    assert len(read_metrics(trained / "metrics.jsonl")) >= 6
    rng = random.Random(1)
    all_variants = variants(good)
    resumed = refused = 0
    for label, data in all_variants:
        run = tmp_path / "run"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(trained, run)
        write_variant(run / "metrics.jsonl", data)
        try:
            read_metrics(run / "metrics.jsonl")
            readable = True
        except MetricsError as exc:
            readable = False
            assert "\n" not in str(exc) and "metrics.jsonl" in str(exc), label
        if FULL or not readable or rng.random() < 0.15:  # drawing a readable one takes a while
            compare = _check(capsys, run, ["compare", str(run), "--out", str(tmp_path / "c.png")])
            assert readable or compare == 2, label  # (a readable file may still hold no loss to draw)
        # --resume: every refusal in the full run; in CI a sample of refusals and a few resumes
        if FULL or (not readable and rng.random() < 0.25) or (readable and resumed < 2):
            code = _check(capsys, run, ["train", "--resume", str(run), "train.steps=5", "--quiet"])
            assert code == (0 if readable else 2), label
            resumed += readable
            refused += not readable
    assert refused >= 10 and resumed >= 1


def test_refusals_name_the_line_and_the_field(tmp_path):
    """The messages of typical faults: the file, the line number, the field, the value (escaped)."""
    path = tmp_path / "metrics.jsonl"
    cases = {
        b'{"step": 1}\n{"step": "3", "split": "train"}\n': r"metrics.jsonl:2: step: expected a whole number .* '3'",
        b'{"step": 1}\n{"step": 2, "loss": "\\u001b[31m"}\n':
            r":2: 'loss': expected a number or null, got '\\x1b\[31m'",
        b'{"step": 1, "split": 5}\n': r":1: split: expected a short printable name .* got 5",
        b'{"step": 1}\n\xff\n{"step": 2}\n': r":2: not UTF-8 \(byte 0",
        b'{"step": 1}\n' + b"[" * 100_000 + b"\n": r":2: (not a JSON line|a line longer than)",
        b'{"step": ' + b"9" * 5000 + b"}\n": r":1: not a JSON line \(Exceeds the limit",
        b'{"step": 1}\n[1, 2]\n': r":2: expected a JSON object, got a JSON array",
        b'{"loss": 1.5}\n': r":1: no 'step'",
        b'{"step": 1, "lr": 1' + b"0" * 400 + b'}\n': r":1: 'lr': expected a number or null, got an integer of 401",
    }
    for data, pattern in cases.items():
        path.write_bytes(data)
        with pytest.raises(MetricsError, match=pattern):
            read_metrics(path)
    path.write_bytes(b'{"step": 1, "loss": NaN}\n{"step": 2, "loss": 1.5')  # a last line cut by a crash
    assert read_metrics(path) == [{"step": 1, "loss": pytest.approx(float("nan"), nan_ok=True)}]
    path.unlink()
    path.mkdir()
    with pytest.raises(MetricsError, match="metrics.jsonl: a folder"):
        read_metrics(path)
