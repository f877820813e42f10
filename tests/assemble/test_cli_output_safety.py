"""What the CLI prints cannot hurt the terminal or the run: control characters in any user string
are escaped, a closed stdout/stderr never stops training, and every interrupt exits 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from stackform.assemble import save, train
from stackform.assemble.build import assemble
from stackform.assemble.cli import main

# An OSC window retitle, a bell, a clear-screen CSI, the one-byte C1 CSI, a bidi override, and a
# lone surrogate (an undecodable byte of a file name).
HOSTILE = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202e\udcff"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\udcff")
SPEC = {
    "name": "tiny", "model": {"kind": "decoder", "vocab_size": 259, "max_len": 16, "d_model": 16, "n_heads": 2,
                              "n_layers": 1, "pad_id": 256, "bos_id": 257, "eos_id": 258},
    "train": {"steps": 2, "batch_size": 2, "seq_len": 8, "eval_every": 2, "eval_steps": 1, "log_every": 1,
              "samples": 1, "sample_tokens": 4, "schedule": {"type": "cosine", "warmup": 1}},
}


def _spec_file(folder: Path, name: str = "spec.yaml", **train_fields) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({**SPEC, "train": {**SPEC["train"], **train_fields}}))
    return path


def _with_plugins(folder: Path) -> Path:
    """A run folder (metrics.jsonl, spec.yaml) whose spec lists a hostile plugin name."""
    run = folder / "plugged"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 5.0}\n')
    (run / "spec.yaml").write_text(yaml.safe_dump({**SPEC, "plugins": [HOSTILE]}))
    return run


def _checkpoint_with_plugins(folder: Path) -> Path:
    model = assemble(SPEC)
    model.spec = model.spec.model_copy(update={"plugins": [HOSTILE]})
    return save(model, folder / "plugged.safetensors")


CASES = {
    "a spec file name": lambda d: ["validate", str(d / f"missing{HOSTILE}.yaml")],
    "a spec file name, ok": lambda d: ["validate", str(_spec_file(d, f"ok{HOSTILE}.yaml"))],
    "train.device": lambda d: ["train", str(_spec_file(d)), f"train.device={HOSTILE}", "--out-dir", str(d / "r")],
    "train.data.path": lambda d: ["train", str(_spec_file(d)), f"train.data={{type: text, path: 'x{HOSTILE}'}}",
                                  "--out-dir", str(d / "r")],
    "train.out_dir": lambda d: ["train", str(_spec_file(d)), "--out-dir", str(d / f"out{HOSTILE}")],
    "stored plugins: of a run": lambda d: ["compare", str(_with_plugins(d)), "--out", str(d / "c.png")],
    "stored plugins: of a checkpoint": lambda d: ["generate", str(_checkpoint_with_plugins(d))],
    "a flag's value": lambda d: ["inspect", "gpt-tiny", "--precision", HOSTILE],
    "an unknown argument": lambda d: ["list", HOSTILE, "--pattern", "x"],
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_user_strings_are_printed_with_control_characters_escaped(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STACKFORM_NO_BAR", "1")
    argv = case(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    printed = out + err
    assert not [c for c in RAW if c in printed], printed
    assert "\\x1b]0;owned\\x07" in printed, printed
    assert "Traceback" not in printed
    if code != 0:  # one error line (argparse puts its usage lines before it)
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("usage:", " "))]
        assert code == 2 and len(lines) == 1, err


def _train_argv(tmp_path: Path, steps: int) -> tuple[list[str], Path]:
    spec = _spec_file(tmp_path, steps=steps, eval_every=5, samples=1, log_every=1)
    out = tmp_path / "run"
    return [str(Path(sys.executable).with_name("stackform")), "train", str(spec), "--out-dir", str(out)], out


def _env() -> dict[str, str]:
    return {**os.environ, "STACKFORM_NO_BAR": "1", "STACKFORM_NO_PLUGINS": "1"}


def _close_output() -> None:
    os.close(1)
    os.close(2)


@pytest.mark.parametrize("how", ["pipe closed after one line", "started with stdout and stderr closed"])
def test_closed_output_never_stops_training(tmp_path, how):
    argv, out = _train_argv(tmp_path, steps=8)
    if how.startswith("pipe"):  # stackform train ... 2>&1 | head -1
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env())
        assert proc.stdout.readline()
        proc.stdout.close()
    else:  # stackform train ... >&- 2>&-
        proc = subprocess.Popen(argv, preexec_fn=_close_output, env=_env())
    assert proc.wait(timeout=300) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) == 8
    assert {"model.safetensors", "train_state.safetensors", "spec.yaml", "curves.png", "samples.txt"} <= {
        p.name for p in out.iterdir()}
    assert not (out / "train.lock").exists()
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as handle:
        assert handle.metadata()["step"] == "8"


def _wait_for(proc: subprocess.Popen, ready) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)


INTERRUPTS = {
    # a SIGTERM before the loop's handler is installed (building the model, reading data)
    "SIGTERM while starting": ("train.lock", [signal.SIGTERM]),
    # the first stops the loop and saves; the second lands after the loop, while curves.png is drawn
    # (Ctrl-C then SIGTERM takes the same path: test_train_faults covers a single Ctrl-C)
    "SIGTERM twice": ("model.safetensors", [signal.SIGTERM, signal.SIGTERM]),
}


INTERRUPTS_SENT = {when: list(sent) for when, sent in INTERRUPTS.values()}


@pytest.mark.parametrize("when, signals", INTERRUPTS.values(), ids=INTERRUPTS.keys())
def test_every_interrupt_exits_130(tmp_path, when, signals):
    argv, out = _train_argv(tmp_path, steps=100_000)
    with open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=_env())
        if when == "train.lock":
            _wait_for(proc, lambda: (out / "train.lock").is_file())
        else:
            _wait_for(proc, lambda: (out / "metrics.jsonl").is_file()
                      and (out / "metrics.jsonl").read_text().count("\n") >= 2)
            proc.send_signal(signals.pop(0))
            _wait_for(proc, lambda: (out / when).is_file())  # the final save: the loop is over
        for sig in signals:
            proc.send_signal(sig)
        proc.wait(timeout=120)
    text = (tmp_path / "err.txt").read_text()
    assert proc.returncode == 130, text
    assert "Traceback" not in text, text
    if len(INTERRUPTS_SENT[when]) > 1:  # a second signal aborts: the CLI's own line
        assert text.strip().endswith("interrupted"), text
    assert not (out / "train.lock").exists()


class _Terminal:
    def __init__(self, tty: bool):
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "pipe"])
def test_generated_text_is_escaped_on_a_terminal_only(monkeypatch, tty):
    from stackform.assemble.cli import generate

    monkeypatch.setattr(sys, "stdout", _Terminal(tty))
    text = "line 1\n\tline 2 \x1b[2J\x07"
    assert generate.show(text) == ("line 1\n\tline 2 \\x1b[2J\\x07" if tty else text)
