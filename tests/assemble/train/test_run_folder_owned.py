"""A run folder is owned: training refuses a folder of anything but a run's files (unless
overwrite), and holds train.lock while it trains: a second trainer refuses naming the first, a
stale lock (its process is gone) is taken over, the lock goes away however the run ends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from stackform.assemble import TrainingError, train
from stackform.assemble.train import run as run_module
from stackform.assemble.train.lock import LOCK_FILE
from stackform.assemble.train.loop import Trainer
from stackform.specs import load_spec


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in folder.rglob("*")}


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_lock(folder: Path, pid: int, host: str | None = None, written: float | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    info = {"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01 00:00:00",
            "time": time.time() if written is None else written}
    (folder / LOCK_FILE).write_text(json.dumps(info))


FOREIGN = {
    "a user's file": {"notes.txt": "mine"},
    "a user's spec alone": {"spec.yaml": "name: mine\n"},
    "a spec and a picture": {"spec.yaml": "name: mine\n", "curves.png": "not ours"},
    "a sub-folder": {"data/train.txt": "text"},
    "a hidden file": {".git/HEAD": "ref"},
    "a run and a user's file": {"metrics.jsonl": "", "spec.yaml": "name: x\n", "todo.md": "- x"},
}


@pytest.mark.parametrize("files", FOREIGN.values(), ids=FOREIGN.keys())
def test_a_folder_of_other_files_is_refused_and_left_as_it_was(tmp_path, make_spec, files):
    out = tmp_path / "mine"
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    before = snapshot(out)
    with pytest.raises(TrainingError) as caught:
        train(make_spec(), out_dir=out, quiet=True)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{out}: not a stackform run folder")
    foreign = {name.split("/")[0] for name in files} - ({"metrics.jsonl", "spec.yaml"} if "todo.md" in files else set())
    assert all(name in message for name in foreign), message
    assert "--overwrite" in message
    assert snapshot(out) == before


def test_overwrite_trains_among_the_users_files_and_keeps_them(tmp_path, make_spec):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = train(make_spec(steps=2, eval_every=2, samples=0), out_dir=out, quiet=True, overwrite=True)
    assert result.step == 2 and (out / "notes.txt").read_text() == "mine"
    assert not (out / LOCK_FILE).exists()


def test_a_crashed_runs_leftovers_are_a_run_folder(tmp_path, make_spec):
    """What a run killed early leaves (spec.yaml, metrics.jsonl, temporary files, its stale lock) is a run's."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "spec.yaml").write_text("name: x\n")
    (out / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 5.0}\n')
    (out / f".model.safetensors.{dead_pid()}.abc123.tmp").write_bytes(b"half")
    (out / ".train_state.pending.safetensors").write_bytes(b"a state saved before its model")
    write_lock(out, dead_pid())
    result = train(make_spec(steps=2, eval_every=2, samples=0), out_dir=out, quiet=True)
    assert result.step == 2 and not (out / LOCK_FILE).exists()


@pytest.mark.parametrize("holder", ["this host, alive", "another host"])
def test_a_held_lock_refuses_in_one_line_naming_the_trainer(tmp_path, make_spec, holder):
    out = tmp_path / "run"
    pid = os.getppid() if holder == "this host, alive" else dead_pid()
    host = None if holder == "this host, alive" else "elsewhere.example"
    write_lock(out, pid, host)
    before = snapshot(out)
    with pytest.raises(TrainingError) as caught:
        train(make_spec(), out_dir=out, quiet=True, overwrite=True)  # overwrite does not beat a lock
    message = str(caught.value)
    assert "another training is running in this folder" in message and f"pid {pid} on" in message
    assert (host or socket.gethostname()) in message and "\n" not in message
    assert snapshot(out) == before


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="process start times come from Linux /proc")
def test_a_lock_whose_pid_was_given_to_a_later_process_is_stale(tmp_path, make_spec):
    """After a reboot or a container restart, the pid in a lock may belong to a process that started
    after the lock was written: the trainer that wrote it is gone."""
    out = tmp_path / "run"
    write_lock(out, os.getppid(), written=1_000_000.0)  # alive, but started long after 1970-01-12
    result = train(make_spec(steps=2, eval_every=2, samples=0), out_dir=out, quiet=True)
    assert result.step == 2 and not (out / LOCK_FILE).exists()


@pytest.mark.parametrize("ending", ["error", "interrupt"])
def test_the_lock_is_removed_however_the_run_ends(tmp_path, make_spec, monkeypatch, ending):
    out = tmp_path / "run"
    seen = []

    def loop(self, stop_at_step=None):
        seen.append((out / LOCK_FILE).is_file())
        raise TrainingError("boom") if ending == "error" else KeyboardInterrupt

    monkeypatch.setattr(Trainer, "loop", loop)
    with pytest.raises(TrainingError if ending == "error" else KeyboardInterrupt):
        train(make_spec(), out_dir=out, quiet=True)
    assert seen == [True] and not (out / LOCK_FILE).exists()


def test_a_second_trainer_refuses_and_a_killed_ones_lock_is_taken_over(tmp_path, make_spec):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(make_spec(steps=100_000, log_every=1, eval_every=100_000, samples=0)))
    out = tmp_path / "run"
    env = {**os.environ, "STACKFORM_NO_BAR": "1", "STACKFORM_NO_PLUGINS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "stackform.assemble", "train", str(spec_file), "--out-dir", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not ((out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").read_text().count("\n") >= 1):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.1)
        lock = json.loads((out / LOCK_FILE).read_text())
        assert lock["pid"] == first.pid and lock["host"] == socket.gethostname()
        with pytest.raises(TrainingError, match=rf"another training is running in this folder \(pid {first.pid} on "):
            train(make_spec(steps=2), out_dir=out, quiet=True)
        with pytest.raises(TrainingError, match=rf"\(pid {first.pid} on "):  # what --nproc checks before torchrun
            run_module.run_folder(load_spec(make_spec()), out, None, True)
    finally:
        first.kill()  # kill -9: no cleanup, the lock stays behind
        first.communicate()
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == first.pid
    result = train(make_spec(steps=2, eval_every=2, samples=0), out_dir=out, quiet=True)  # stale: taken over
    assert result.step == 2 and not (out / LOCK_FILE).exists()
