"""Resume is exact: N steps, then --resume for N more, gives the weights of 2N straight steps."""

from __future__ import annotations

import pytest
import torch

from stackform.assemble import TrainingError, load, train
from stackform.assemble.train.state import STATE_FILE


def _weights(path) -> dict[str, torch.Tensor]:
    return load(path).state_dict()


@pytest.mark.parametrize("kind,extra", [
    ("decoder", {"grad_accum": 2}),  # dropout, accumulation, cosine schedule
    ("encoder", {}),  # MLM masking draws from the data generator
])
def test_resume_is_bitwise_equal_to_straight_run(tmp_path, make_spec, kind, extra):
    spec = make_spec(kind, steps=8, eval_every=3, **extra)
    straight = train(spec, out_dir=tmp_path / "straight", quiet=True)
    assert straight.step == 8 and straight.stopped == "done"
    half = train(spec, out_dir=tmp_path / "split", stop_at_step=4, quiet=True)
    assert half.step == 4 and half.stopped == "stop_at_step"
    rest = train(resume=tmp_path / "split", quiet=True)
    assert rest.step == 8 and rest.stopped == "done"
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    early = _weights(tmp_path / "split")  # sanity: 4 more steps changed the weights
    assert any(not torch.equal(early[k], half.model.state_dict()[k].cpu()) for k in early)


def test_resume_can_train_longer_and_keeps_metrics(tmp_path, make_spec):
    spec = make_spec(steps=4, schedule={"type": "constant", "warmup": 1})
    train(spec, out_dir=tmp_path / "run", quiet=True)
    longer = train(resume=tmp_path / "run", overrides=["train.steps=6"], quiet=True)
    assert longer.step == 6 and longer.spec.train.steps == 6
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in lines]
    assert steps == sorted(steps) and steps[-1] == 6 and 2 in steps


def test_resume_rejects_model_overrides_and_bad_folders(tmp_path, make_spec):
    spec = make_spec(steps=2, schedule={"type": "constant", "warmup": 0})
    train(spec, out_dir=tmp_path / "run", quiet=True)
    with pytest.raises(TrainingError, match=r"only train\.\* settings can change when resuming"):
        train(resume=tmp_path / "run", overrides=["model.d_model=64"], quiet=True)
    with pytest.raises(TrainingError, match="not a run folder"):
        train(resume=tmp_path / "nowhere", quiet=True)
    with pytest.raises(TrainingError, match=r"already holds a run .*--resume"):
        train(spec, out_dir=tmp_path / "run", quiet=True)
    (tmp_path / "run" / STATE_FILE).write_bytes(b"")
    with pytest.raises(Exception, match="empty"):
        train(resume=tmp_path / "run", overrides=["train.steps=4"], quiet=True)


def _files(run) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


@pytest.mark.parametrize("overrides", [[], ["train.steps=1"]])
def test_resume_without_steps_left_is_refused_and_writes_nothing(tmp_path, make_spec, overrides):
    train(make_spec(steps=2, schedule={"type": "constant", "warmup": 0}), out_dir=tmp_path / "run", quiet=True)
    before = _files(tmp_path / "run")
    with pytest.raises(TrainingError, match=r"already at step 2 and train\.steps is [12]; give train\.steps=N "
                                            r"with N above 2"):
        train(resume=tmp_path / "run", overrides=overrides, quiet=True)
    assert _files(tmp_path / "run") == before  # spec.yaml, metrics.jsonl, checkpoints untouched


def test_resume_into_another_run_folder_is_refused(tmp_path, make_spec):
    spec = make_spec(steps=2, schedule={"type": "constant", "warmup": 0})
    train(spec, out_dir=tmp_path / "a", quiet=True)
    train(spec, out_dir=tmp_path / "b", quiet=True)
    before = _files(tmp_path / "b")
    with pytest.raises(TrainingError, match=r"b already holds a run .*--overwrite"):
        train(resume=tmp_path / "a", overrides=["train.steps=3"], out_dir=tmp_path / "b", quiet=True)
    assert _files(tmp_path / "b") == before
    forked = train(resume=tmp_path / "a", overrides=["train.steps=3"], out_dir=tmp_path / "c", quiet=True)
    assert forked.step == 3 and load(tmp_path / "a").spec.train.steps == 2  # a new folder is fine
