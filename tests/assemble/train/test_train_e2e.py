"""`stackform train` end to end on tiny specs: every file of the run folder, metrics, errors."""

from __future__ import annotations

import json

import pytest
import yaml

from stackform.assemble import TrainingError, load, load_spec, train
from stackform.assemble.cli import main
from stackform.assemble.train import RUN_FILES


def _write(tmp_path, spec: dict):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_cli_train_writes_every_file(tmp_path, make_spec, capsys, monkeypatch):
    path = _write(tmp_path, make_spec())
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(path), "train.steps=5", "model.d_model=16"]) == 0
    out, err = capsys.readouterr()
    run = tmp_path / "runs" / "tiny-decoder"  # default out_dir: runs/<name> in the current directory
    assert sorted(p.name for p in run.iterdir()) == sorted(RUN_FILES)
    assert "bits per byte" in out and str(run.relative_to(tmp_path)) in out
    assert "step 2/5" in err and "val" in err  # plain log lines (stderr is not a terminal)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in records if r["split"] == "train"]
    val_lines = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in train_lines] == [2, 4, 5] and [r["step"] for r in val_lines] == [3, 5]
    for r in train_lines:
        assert {"loss", "lr", "tokens_per_s", "elapsed_s"} <= r.keys() and r["tokens_per_s"] > 0
    assert {"loss", "ppl", "bpb", "elapsed_s"} <= val_lines[-1].keys()
    model = load(run)
    assert model.spec.model.d_model == 16 and model.spec.train.steps == 5
    from stackform.assemble.checkpoint import read_checkpoint

    assert read_checkpoint(run / "model.safetensors")[1]["step"] == "5"
    rerun = load_spec(run / "spec.yaml")  # the resolved spec reruns as it is
    assert rerun == model.spec
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert len((run / "samples.txt").read_text().strip().split("\n\n")) == 2


def test_cli_errors_are_one_line(tmp_path, make_spec, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, make_spec(steps=2, schedule={"type": "constant", "warmup": 0}))
    assert main(["train", str(path), "train.task=mlm"]) == 2
    err = capsys.readouterr().err
    assert "train.task: task mlm does not fit model.kind decoder (use causal_lm)" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["train", str(path), "--quiet"]) == 0
    assert main(["train", str(path), "--quiet"]) == 2  # the run is there: nothing is overwritten
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", str(path), "--quiet", "--overwrite"]) == 0
    assert main(["train"]) == 2 and "give a spec" in capsys.readouterr().err


def test_mlm_reports_the_unigram_baseline(tmp_path, make_spec):
    result = train(make_spec("encoder", steps=4), out_dir=tmp_path / "run", quiet=True)
    assert result.metrics["unigram_loss"] > 0 and result.metrics["loss"] > 0
    assert "filled" in (tmp_path / "run" / "samples.txt").read_text()


def test_mlm_without_masked_validation_positions_reports_no_loss(tmp_path, make_spec, capsys):
    """Nothing masked in validation: the loss is undefined (NaN), not 0.0, and the summary says why."""
    result = train(make_spec("encoder", steps=2, mlm_probability=1e-9, samples=0), out_dir=tmp_path / "run")
    assert all(result.metrics[key] != result.metrics[key] for key in ("loss", "ppl", "unigram_loss"))  # NaN
    assert "none of the validation batches' positions was masked" in capsys.readouterr().out


def test_seq2seq_reports_exact_match(tmp_path, make_spec):
    result = train(make_spec("encoder_decoder", steps=4, label_smoothing=0.1), out_dir=tmp_path / "run", quiet=True)
    assert 0.0 <= result.metrics["exact_match"] <= 1.0
    assert "->" in (tmp_path / "run" / "samples.txt").read_text()


def test_time_budget_stops_and_saves(tmp_path, make_spec):
    result = train(make_spec(steps=1000, max_minutes=1e-6), out_dir=tmp_path / "run", quiet=True)
    assert result.stopped == "time budget" and result.step < 1000
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.parametrize("how", [{"max_minutes": 3 / 60}, {"stop_at_step": 3}])
def test_an_early_stop_logs_the_steps_since_the_last_train_line(tmp_path, make_spec, monkeypatch, how):
    """A run stopped between train lines (log_every 50) still has a train record at its last step."""
    import stackform.assemble.train.loop as loop

    # a clock of one second per step: the 3-second budget stops the run at step 3 on any machine
    monkeypatch.setattr(loop.Trainer, "elapsed", lambda self: float(self.run.counters.step))
    spec = make_spec(steps=1000, log_every=50, eval_every=1000, max_minutes=how.get("max_minutes"))
    result = train(spec, out_dir=tmp_path / "run", quiet=True, stop_at_step=how.get("stop_at_step"))
    assert result.step == 3
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in records] == [(3, "train"), (3, "val")]
    assert records[0]["loss"] > 0


def _nan_from_step(monkeypatch, step: int):
    import stackform.assemble.train.loop as loop

    real = loop.Trainer.train_step

    def train_step(self, s):
        loss, norm, tokens, lr = real(self, s)
        return (loss * float("nan") if s >= step else loss), norm, tokens, lr

    monkeypatch.setattr(loop.Trainer, "train_step", train_step)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, make_spec, monkeypatch):
    train(make_spec(steps=2, schedule={"type": "constant", "warmup": 0}), out_dir=tmp_path / "run", quiet=True)
    good = load(tmp_path / "run").state_dict()
    _nan_from_step(monkeypatch, 3)
    with pytest.raises(TrainingError, match=r"step 3: the loss is nan .*last good checkpoint \(step 2\)"):
        train(resume=tmp_path / "run", overrides=["train.steps=6", "train.save_every=2"], quiet=True)
    after = load(tmp_path / "run").state_dict()
    assert all((after[k] == v).all() for k, v in good.items())


def test_on_nan_skip_counts_skipped_steps(tmp_path, make_spec, monkeypatch):
    _nan_from_step(monkeypatch, 4)
    result = train(make_spec(steps=5, on_nan="skip"), out_dir=tmp_path / "run", quiet=True)
    assert result.step == 5
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-2]["split"] == "train" and records[-2]["skipped"] == 2


def test_on_nan_skip_when_every_step_diverges_still_finishes(tmp_path, make_spec, capsys):
    """lr 1e30: step 1 blows the weights up, every later step is skipped. The run finishes (the
    samples cannot be made: samples.txt and the summary say why), the summary counts the skipped
    steps, and a train line whose steps were all skipped has no loss (NaN), not 0.0."""
    spec = make_spec(steps=6, on_nan="skip", grad_clip=None, optimizer={"lr": 1e30},
                     schedule={"type": "constant", "warmup": 0})
    result = train(spec, out_dir=tmp_path / "run")
    out = capsys.readouterr().out
    assert result.step == 6 and result.stopped == "done" and result.skipped == 5
    assert "5 of 6 steps skipped for a non-finite loss or gradient" in out
    samples_txt = (tmp_path / "run" / "samples.txt").read_text()
    assert samples_txt.startswith("no samples: generation:") and len(samples_txt.strip().splitlines()) == 1
    assert f"no samples ({result.samples_error})" in out and "NaN or inf" in result.samples_error
    records = [_strict(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train_lines] == [2, 4, 6]
    assert train_lines[0]["loss"] > 0  # step 1 was kept
    assert all(r["loss"] is None and r["grad_norm"] is None for r in train_lines[1:])  # nothing to average, not 0.0
    assert [r["loss"] for r in records if r["split"] == "val"] == [None, None]  # NaN: null, strict JSON
    # a resume reads the nulls back (and plots them as gaps)
    result = train(resume=tmp_path / "run", overrides=["train.steps=8"], quiet=True)
    assert result.step == 8 and (tmp_path / "run" / "curves.png").stat().st_size > 0
    records = [_strict(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4, 6, 8]


def _strict(line: str) -> dict:
    """A metrics.jsonl line read as strict JSON: a bare NaN or Infinity is an error."""
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(line, parse_constant=refuse)


def test_resume_turns_bare_nan_of_an_older_metrics_file_into_null(tmp_path, make_spec):
    train(make_spec(steps=2, schedule={"type": "constant", "warmup": 0}), out_dir=tmp_path / "run", quiet=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.write_text(metrics.read_text().replace('"loss": ', '"loss": NaN, "old_loss": '))  # as older versions wrote
    train(resume=tmp_path / "run", overrides=["train.steps=4"], quiet=True)
    records = [_strict(x) for x in metrics.read_text().splitlines()]
    assert [r["loss"] is None for r in records if r["step"] <= 2] == [True, True]
    assert all(r["loss"] > 0 for r in records if r["step"] > 2)


def test_cli_resume_and_shortcuts(tmp_path, make_spec, capsys):
    path = _write(tmp_path, make_spec(schedule={"type": "constant", "warmup": 0}))
    run = tmp_path / "run"
    assert main(["train", str(path), "--steps", "3", "--device", "cpu", "--out-dir", str(run), "--quiet"]) == 0
    assert load(run).spec.train.steps == 3 and load(run).spec.train.device == "cpu"
    assert main(["train", "--resume", str(run), "train.steps=5"]) == 0
    out = capsys.readouterr().out
    assert "finished at step 5/5" in out
    assert main(["train", "--resume", str(run), "model.n_layers=3"]) == 2
    assert "only train.* settings can change when resuming" in capsys.readouterr().err


def test_user_text_and_tsv_pairs(tmp_path, make_spec):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"{i}.txt").write_text(f"document {i}: the quick brown fox jumps over the lazy dog.\n" * 60)
    text = make_spec(data={"type": "text", "path": str(corpus), "val_fraction": 0.1}, steps=3)
    result = train(text, out_dir=tmp_path / "text", quiet=True)
    assert result.metrics["bpb"] > 0
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{i}\t{i * 2}\n" for i in range(60)))
    pairs = make_spec("encoder_decoder", data={"type": "pairs", "path": str(tsv)}, steps=3)
    result = train(pairs, out_dir=tmp_path / "pairs", quiet=True)
    assert 0.0 <= result.metrics["exact_match"] <= 1.0


def test_ctrl_c_stops_after_the_step_and_saves(tmp_path, make_spec, monkeypatch):
    import signal

    import stackform.assemble.train.loop as loop

    real = loop.Trainer.train_step

    def train_step(self, s):
        out = real(self, s)
        if s == 2:
            signal.raise_signal(signal.SIGINT)  # as if the user pressed Ctrl-C during step 2
        return out

    monkeypatch.setattr(loop.Trainer, "train_step", train_step)
    result = train(make_spec(steps=6), out_dir=tmp_path / "run", quiet=True)
    assert result.stopped == "interrupted" and result.step == 2
    from stackform.assemble.checkpoint import read_checkpoint

    assert read_checkpoint(tmp_path / "run" / "model.safetensors")[1]["step"] == "2"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is restored


def test_a_huge_perplexity_prints_in_scientific_notation():
    """A diverged run's perplexity (up to e^50) is 5.185e+21, not a 22-digit number; small ones stay fixed-point."""
    from stackform.assemble.train.console import fmt_metrics
    from stackform.assemble.train.summary import _metric_lines

    huge = {"loss": 50.0, "ppl": 5.184705528587072e21, "bpb": 72.1}
    assert _metric_lines("causal_lm", huge) == [
        "validation loss 50.0000 nats/token, perplexity 5.185e+21, 72.100 bits per byte"]
    assert "ppl 5.185e+21" in fmt_metrics(huge)
    assert "perplexity 2.940," in _metric_lines("causal_lm", {"loss": 1.0787, "ppl": 2.94, "bpb": 1.556})[0]
    assert "ppl 2.94" in fmt_metrics({"ppl": 2.94}) and "ppl 999999.00" in fmt_metrics({"ppl": 999999.0})


@pytest.mark.parametrize("train_losses", [[2.5], [3.0, None, 2.5, None, 2.0]], ids=["one-record", "between-gaps"])
def test_curves_show_a_train_point_with_no_neighbour(train_losses):
    """A run shorter than log_every has one train record (and on_nan: skip leaves gaps): a line through
    one point draws nothing, so such points get a marker in curves.png, for the loss and the rate."""
    from stackform.assemble.train.report import curves_figure

    records = [{"step": 10 * (i + 1), "split": "train", "loss": loss, "lr": 1e-3}
               for i, loss in enumerate(train_losses)]
    records.append({"step": 10 * len(train_losses), "split": "val", "loss": 2.7})
    loss_ax, lr_ax = curves_figure(records, "t").axes
    shown = {(x, y) for line in loss_ax.lines if line.get_marker() not in ("None", "", " ", None)
             for x, y in zip(line.get_xdata(), line.get_ydata())}
    for i, loss in enumerate(train_losses):
        neighbours = [train_losses[j] for j in (i - 1, i + 1) if 0 <= j < len(train_losses)]
        if loss is not None and all(n is None for n in neighbours):
            assert (10 * (i + 1), loss) in shown
    marked_rates = [line for line in lr_ax.lines
                    if line.get_marker() not in ("None", "", " ", None) and len(line.get_xdata())]
    assert bool(marked_rates) == (len(train_losses) == 1)  # the rate has gaps nowhere: marked only when alone
