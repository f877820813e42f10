"""One checkpoint is one commit: a crash at any instant leaves the previous model + train state
pair or the new one, never a mix, and a resume refuses a pair that does not belong together.

Proved two ways: a crash injected before every file operation of a save (each one a distinct
state of the folder), and kill -9 of a training process at random moments, resumed after each
kill, whose weights always equal an uninterrupted run's at the checkpoint's step.
``STACKFORM_KILLS=N`` runs exactly N kills (by hand; CI runs for about 15 seconds).
"""

from __future__ import annotations

import collections
import os
import random
import shutil
import signal
import stat
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from stackform.assemble import CheckpointError, load, save, train
from stackform.assemble.cli import main
from stackform.assemble.train import commit, loop
from stackform.assemble.train.commit import MODEL_FILE, PENDING_FILE, find_pair
from stackform.assemble.train.state import COMMIT_KEY, PAIRING_KEYS, STATE_FILE


def _spec(make_spec, **train_fields):
    return make_spec(**{"steps": 6, "save_every": 1, "log_every": 1, "eval_every": 1000, "samples": 0, **train_fields})


def _weights(folder) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in load(folder).state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def no_plot(monkeypatch):
    """curves.png is not what these tests look at, and drawing it is most of a tiny run's time."""
    from stackform.assemble.train import run

    monkeypatch.setattr(run, "plot_curves", lambda *args, **kwargs: None)


@pytest.fixture
def reference(tmp_path, monkeypatch):
    """(spec, {step: weights}) of an uninterrupted run that saves after every step."""
    def make(spec):
        saved: dict[int, dict[str, torch.Tensor]] = {}
        real = loop.save_checkpoint

        def recording(folder, model, step, *args, **kwargs):
            saved[step] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            real(folder, model, step, *args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(loop, "save_checkpoint", recording)
            train(spec, out_dir=tmp_path / "reference", quiet=True)
        return saved

    return make


class Crash(BaseException):
    """Stands for kill -9 at one instant of a save."""


def _crash_before(monkeypatch, n: int) -> list[str]:
    """Make the n-th file operation of the next saves raise Crash before it runs; returns the operations seen."""
    seen: list[str] = []
    for name in ("write_temp", "replace_with", "_move"):
        real = getattr(commit, name)

        def wrapper(*args, _real=real, _name=name):
            seen.append(f"{_name}({os.path.basename(str(args[-1] if _name != 'write_temp' else args[0]))})")
            if len(seen) == n:
                raise Crash(seen[-1])
            return _real(*args)

        monkeypatch.setattr(commit, name, wrapper)
    return seen


def test_a_crash_before_any_file_operation_leaves_one_whole_pair(tmp_path, make_spec, reference, monkeypatch,
                                                                  no_plot):
    constant = {"type": "constant", "warmup": 0}  # the lr does not depend on train.steps
    ref = reference(_spec(make_spec, steps=5, schedule=constant))
    spec = _spec(make_spec, steps=5, save_every=None, schedule=constant)  # saves only when a run stops
    base = tmp_path / "base"
    train(spec, out_dir=base, stop_at_step=2, quiet=True)
    operations, outcomes = None, collections.Counter()
    for n in range(1, 20):
        folder = tmp_path / f"crash-{n}"
        shutil.copytree(base, folder)
        with monkeypatch.context() as patch:
            seen = _crash_before(patch, n)
            try:
                train(resume=folder, stop_at_step=4, quiet=True)  # one save, at step 4
            except Crash:
                pass
            else:
                operations = seen
        pair = find_pair(folder)  # never a torn pair
        assert _same(_weights(folder), ref[pair.step]), (n, seen[-1])
        outcomes[(pair.step, pair.state.name)] += 1
        train(resume=folder, quiet=True)  # resumes from the pair that was left (the next save settles it) ...
        assert _same(_weights(folder), ref[5]), n  # ... and ends where the uninterrupted run did
        assert find_pair(folder).state.name == STATE_FILE and not (folder / PENDING_FILE).exists()
        shutil.rmtree(folder)
        if operations is not None:
            break
    # the model's temporary file, the pending state, the model into place (the commit), the state into place
    assert operations == ["write_temp(model.safetensors)", f"write_temp({PENDING_FILE})",
                          f"replace_with({PENDING_FILE})", "replace_with(model.safetensors)",
                          f"_move({STATE_FILE})"], operations
    # before the commit point the previous pair, after it the new model with its pending state, then the new pair
    assert outcomes == {(2, STATE_FILE): 4, (4, PENDING_FILE): 1, (4, STATE_FILE): 1}, outcomes


def _two_saves(tmp_path, make_spec):
    spec = _spec(make_spec, steps=3)
    train(spec, out_dir=tmp_path / "a", stop_at_step=2, quiet=True)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    train(resume=tmp_path / "b", quiet=True)
    return tmp_path / "a", tmp_path / "b"


@pytest.mark.parametrize("mix", ["new state, old model", "old state, new model"])
def test_a_torn_pair_is_refused_in_one_line_and_nothing_changes(tmp_path, make_spec, mix, capsys):
    a, b = _two_saves(tmp_path, make_spec)
    torn = tmp_path / "torn"
    shutil.copytree(a, torn)
    shutil.copy(b / (STATE_FILE if mix.startswith("new state") else MODEL_FILE), torn)
    before = _files(torn)
    with pytest.raises(CheckpointError, match=r"are not one checkpoint; .* put back the train_state") as error:
        train(resume=torn, overrides=["train.steps=5"], quiet=True)
    assert "\n" not in str(error.value) and "step 2" in str(error.value) and "step 3" in str(error.value)
    assert main(["train", "--resume", str(torn), "train.steps=5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "not one checkpoint" in err
    assert _files(torn) == before


def test_a_model_file_changed_or_replaced_after_the_save_is_refused(tmp_path, make_spec):
    a, _ = _two_saves(tmp_path, make_spec)
    tensors = load_file(a / MODEL_FILE)
    from safetensors import safe_open

    with safe_open(str(a / MODEL_FILE), framework="pt") as handle:
        meta = handle.metadata()
    original = (a / MODEL_FILE).read_bytes()
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1  # other weights, the same commit id
    save_file(tensors, str(a / MODEL_FILE), metadata=meta)
    before = _files(a)
    with pytest.raises(CheckpointError, match="the model file changed after that save"):
        train(resume=a, overrides=["train.steps=5"], quiet=True)
    assert _files(a) == before
    (a / MODEL_FILE).write_bytes(original)
    save(load(a), a / MODEL_FILE)  # re-saved by hand: no commit id
    with pytest.raises(CheckpointError, match="not one checkpoint"):
        train(resume=a, overrides=["train.steps=5"], quiet=True)


def test_a_pair_saved_before_commit_ids_still_resumes(tmp_path, make_spec):
    a, b = _two_saves(tmp_path, make_spec)
    for folder in (a, b):
        for name, drop in ((MODEL_FILE, (COMMIT_KEY,)), (STATE_FILE, PAIRING_KEYS)):
            from safetensors import safe_open

            with safe_open(str(folder / name), framework="pt") as handle:
                meta = {k: v for k, v in handle.metadata().items() if k not in drop}
            save_file(load_file(folder / name), str(folder / name), metadata=meta)
    assert find_pair(a).commit is None and find_pair(a).step == 2
    shutil.copy(b / STATE_FILE, a)  # an old-style torn pair: only the steps differ, and that is seen
    with pytest.raises(CheckpointError, match="not one checkpoint"):
        find_pair(a)
    assert train(resume=b, overrides=["train.steps=4"], quiet=True).step == 4


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_every_file_of_a_run_folder_is_0644_under_umask_022(tmp_path, make_spec):
    previous = os.umask(0o022)
    try:
        out = tmp_path / "run"
        train(make_spec(steps=2, eval_every=2, samples=1), out_dir=out, quiet=True)
    finally:
        os.umask(previous)
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in out.iterdir()}
    assert {MODEL_FILE, STATE_FILE, "spec.yaml", "metrics.jsonl", "samples.txt", "curves.png"} <= set(modes)
    assert set(modes.values()) == {oct(0o644)}, modes


def _child(spec, out) -> None:
    """The killed process: start the run, or resume it from what the last kill left."""
    code = 0
    try:
        torch.set_num_threads(1)
        if (out / MODEL_FILE).exists():
            train(resume=out, quiet=True)
        else:
            train(spec, out_dir=out, overwrite=True, quiet=True)
    except BaseException as exc:  # noqa: BLE001 - reported through the exit status and this file
        (out.parent / "child-error.txt").write_text(f"{type(exc).__name__}: {exc}")
        code = 3
    finally:
        os._exit(code)


def _outcome(out, steps: int) -> str:
    if not (out / MODEL_FILE).exists():
        return "no checkpoint yet"
    pair = find_pair(out)
    if pair.step == steps:
        return "run complete"
    return "new model + pending state" if pair.state.name == PENDING_FILE else "whole pair in place"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_9_at_random_moments_never_leaves_a_pair_that_resumes_wrong(tmp_path, make_spec, reference, no_plot):
    steps = 12
    spec = _spec(make_spec, steps=steps)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the children train on one thread; the reference must add in the same order
    try:
        ref = reference(spec)
        out = tmp_path / "run"
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(spec, out)
        assert os.waitpid(pid, 0)[1] == 0  # one whole run in a child: how long kills may wait
        span = time.monotonic() - started
        assert _same(_weights(out), ref[steps])
        shutil.rmtree(out)
        wanted = int(os.environ.get("STACKFORM_KILLS", "0"))
        deadline = time.monotonic() + 15
        rng, kills, stats = random.Random(0), 0, collections.Counter()
        while kills < wanted if wanted else time.monotonic() < deadline or kills < 3:
            pid = os.fork()
            if pid == 0:
                _child(spec, out)
            time.sleep(rng.uniform(0, span))
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                kills += 1
            else:
                error = tmp_path / "child-error.txt"
                assert os.WEXITSTATUS(status) == 0, error.read_text() if error.exists() else status
            outcome = _outcome(out, steps)  # find_pair: never a torn pair
            stats[outcome if not done else "finished before the kill"] += 1
            stats["kill mid-save (a temporary file left)"] += out.is_dir() and any(
                p.name.endswith(".tmp") for p in out.iterdir())
            if (out / MODEL_FILE).exists():
                step = find_pair(out).step
                assert _same(_weights(out), ref[step]), f"kill {kills}: weights at step {step} differ"
            if outcome == "run complete":
                shutil.rmtree(out)  # start over for more kills
        if (out / MODEL_FILE).exists() and find_pair(out).step < steps:
            train(resume=out, quiet=True)
        else:
            train(spec, out_dir=out, overwrite=True, quiet=True)
        assert _same(_weights(out), ref[steps])
    finally:
        torch.set_num_threads(threads)
    print(f"\n{kills} kills -9: {dict(stats)}")
    assert kills >= 3


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_last_pair(tmp_path, make_spec, monkeypatch):
    spec = _spec(make_spec, steps=4)
    folder = tmp_path / "run"
    train(spec, out_dir=folder, stop_at_step=2, quiet=True)
    before = _files(folder)
    real = commit.write_temp

    def full(path, data):
        if str(path).endswith(PENDING_FILE):
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(commit, "write_temp", full)
    with pytest.raises(CheckpointError, match=r"checkpoint of step 3 could not be written \(No space left on device\); "
                                              r"the last whole checkpoint"):
        train(resume=folder, quiet=True)
    assert {k: v for k, v in _files(folder).items() if k in (MODEL_FILE, STATE_FILE)} == \
        {k: before[k] for k in (MODEL_FILE, STATE_FILE)}
    assert not any(name.endswith(".tmp") for name in os.listdir(folder))
    monkeypatch.undo()
    assert train(resume=folder, quiet=True).step == 4
