"""train.log (csv, tensorboard, wandb) carries metrics.jsonl's records; train.keep_best keeps the best weights."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from stackform.assemble import load, train
from stackform.assemble.train import keep_best as keep_best_module
from stackform.assemble.train.commit import read_metadata
from stackform.assemble.train.keep_best import BEST_FILE, BestKeeper, best_loss
from stackform.specs import load_spec

TRAIN_KEYS = {"step", "split", "loss", "lr", "grad_norm", "tokens_per_s", "memory_mib", "elapsed_s"}


def _jsonl(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _csv(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: (v if k == "split" else int(v) if k == "step" else float(v)) for k, v in row.items() if v != ""}
            for row in rows]


def test_csv_holds_the_records_of_metrics_jsonl_through_a_resume(tmp_path, make_spec):
    spec = make_spec(steps=6, log=["jsonl", "csv"])
    run = tmp_path / "run"
    train(spec, out_dir=run, stop_at_step=4, quiet=True)
    train(resume=run, quiet=True)
    records = _jsonl(run)
    assert TRAIN_KEYS <= set(next(r for r in records if r["split"] == "train"))
    assert all(r["memory_mib"] > 0 for r in records if r["split"] == "train")
    assert _csv(run) == [{k: v for k, v in r.items() if v is not None} for r in records]
    assert sorted(r["step"] for r in records) == [r["step"] for r in records]  # resumed: no step twice per split


def test_tensorboard_gets_the_same_scalars_and_the_spec(tmp_path, make_spec):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(make_spec(steps=6, log=["tensorboard"]), out_dir=run, stop_at_step=4, quiet=True)
    train(resume=run, quiet=True)
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0}).Reload()
    records = _jsonl(run)
    for split, key in (("train", "loss"), ("train", "lr"), ("train", "grad_norm"), ("train", "tokens_per_s"),
                       ("train", "memory_mib"), ("val", "loss"), ("val", "bpb")):
        expected = [(r["step"], r[key]) for r in records if r["split"] == split]
        seen = [(e.step, e.value) for e in events.Scalars(f"{split}/{key}")]
        assert [s for s, _ in seen] == [s for s, _ in expected], (split, key)  # resumed steps not twice
        assert [v for _, v in seen] == pytest.approx([v for _, v in expected], rel=1e-6)
    (config,) = events.Tensors("config/text_summary")[-1:]
    assert b"name: tiny-decoder" in config.tensor_proto.string_val[0]


def test_wandb_offline_run_gets_the_spec_as_config(tmp_path, make_spec, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    train(make_spec(steps=4, log=["wandb"]), out_dir=run, quiet=True)
    (offline,) = (run / "wandb").glob("offline-run-*")
    run_id = (run / "wandb" / "stackform-run-id").read_text()
    assert offline.name.endswith(run_id)
    (records,) = offline.glob("*.wandb")  # protobuf records: config items and history rows, keys as text
    data = records.read_bytes()
    for text in (b"eval_every", b"tiny-decoder", b"train/loss", b"train/grad_norm", b"train/memory_mib",
                 b"val/bpb"):
        assert text in data, text


def test_a_missing_logger_package_is_one_line_naming_the_extra(tmp_path, make_spec, monkeypatch):
    import builtins

    real = builtins.__import__

    def without(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard") or name == "tensorboard":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    with pytest.raises(Exception, match=r"train.log: tensorboard needs the tensorboard package: "
                                        r"pip install 'stackform\[tensorboard\]'"):
        train(make_spec(steps=2, log=["tensorboard"]), out_dir=tmp_path / "run", quiet=True)


def _val_losses(run: Path) -> list[float]:
    return [r["loss"] for r in _jsonl(run) if r["split"] == "val"]


def test_keep_best_holds_the_lowest_validation_loss_through_a_resume(tmp_path, make_spec):
    spec = make_spec(steps=12, eval_every=2, keep_best=True, optimizer={"lr": 3e-2})
    run = tmp_path / "run"
    train(spec, out_dir=run, stop_at_step=5, quiet=True)
    first = best_loss(run / BEST_FILE)
    assert first == pytest.approx(min(_val_losses(run)))
    train(resume=run, quiet=True)
    losses = _val_losses(run)
    meta = read_metadata(run / BEST_FILE)
    assert float(meta["val_loss"]) == pytest.approx(min(losses)) and float(meta["val_loss"]) <= first
    best_step = [r["step"] for r in _jsonl(run) if r["split"] == "val"][losses.index(min(losses))]
    assert meta["step"] == str(best_step)
    model = load(run / BEST_FILE)  # a whole checkpoint: weights and spec
    assert model.spec.train.keep_best
    last = load(run)
    differs = any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), last.state_dict().values()))
    assert differs == (best_step != 12)


def test_a_new_run_in_the_folder_drops_the_old_best(tmp_path, make_spec):
    run = tmp_path / "run"
    train(make_spec(steps=2, keep_best=True), out_dir=run, quiet=True)
    assert (run / BEST_FILE).is_file()
    train(make_spec(steps=2), out_dir=run, overwrite=True, quiet=True)
    assert not (run / BEST_FILE).exists()


def test_a_kill_while_the_best_is_written_keeps_the_previous_best(tmp_path, monkeypatch, make_spec):
    spec = load_spec(make_spec(keep_best=True))
    from stackform.assemble import assemble

    fake = SimpleNamespace(spec=spec, model=assemble(spec), out_dir=tmp_path, counters=SimpleNamespace(step=0),
                           console=None)
    keeper = BestKeeper(fake)
    assert keeper.offer(2, {"loss": 3.0}) and not keeper.offer(3, {"loss": 3.5})
    assert not keeper.offer(4, {"loss": math.nan})
    before = (tmp_path / BEST_FILE).read_bytes()

    def killed(tmp, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(keep_best_module, "replace_with", killed)
    with torch.no_grad():
        next(fake.model.parameters()).add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        keeper.offer(5, {"loss": 2.0})
    assert (tmp_path / BEST_FILE).read_bytes() == before and best_loss(tmp_path / BEST_FILE) == 3.0
    monkeypatch.undo()
    resumed = BestKeeper(SimpleNamespace(**{**vars(fake), "counters": SimpleNamespace(step=4)}))
    assert not resumed.offer(6, {"loss": 3.0}) and resumed.best == 3.0 and resumed.offer(7, {"loss": 2.5})
    assert best_loss(tmp_path / BEST_FILE) == 2.5
