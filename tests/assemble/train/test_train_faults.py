"""Training faults: SIGINT/SIGTERM save and exit cleanly, and the run resumes; an unwritable
run folder or a full disk is reported before training starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from stackform.assemble import TrainingError, load, train
from stackform.assemble.train.state import STATE_FILE
import stackform.assemble.train.run as run_module


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_and_the_run_resumes(sig, tmp_path, make_spec):
    spec = make_spec(steps=100_000, log_every=1, eval_every=100_000, samples=0)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "run"
    env = {**os.environ, "STACKFORM_NO_BAR": "1", "STACKFORM_NO_PLUGINS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "stackform.assemble", "train", str(spec_file), "--out-dir", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "stopping after this step and saving" in stdout + stderr
    saved = load(out)
    assert (out / STATE_FILE).exists()
    stopped_at = max(json.loads(line)["step"] for line in metrics.read_text().splitlines())
    result = train(resume=out, overrides=[f"train.steps={stopped_at + 2}"], quiet=True)
    assert result.step == stopped_at + 2 and result.stopped == "done"
    assert saved.spec.name == spec["name"]


def test_an_unwritable_run_folder_is_reported_before_training(tmp_path, make_spec):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(TrainingError, match="the run folder is not writable"):
        train(make_spec(), out_dir=blocker / "run", quiet=True)


def test_a_full_disk_is_reported_before_training(tmp_path, make_spec, monkeypatch):
    monkeypatch.setattr(run_module.shutil, "disk_usage", lambda path: type("U", (), {"free": 1 << 20})())
    with pytest.raises(TrainingError, match=r"only 1 MiB free on its disk; a checkpoint .* needs about"):
        train(make_spec(), out_dir=tmp_path / "run", quiet=True)
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("out_dir", ["", "  "])
def test_an_empty_out_dir_is_refused_not_ignored(tmp_path, make_spec, monkeypatch, out_dir):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrainingError, match=r"--out-dir: an empty path"):
        train(make_spec(), out_dir=out_dir, quiet=True)
    assert not (tmp_path / "runs").exists()  # nothing went to the default folder instead
