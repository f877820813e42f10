"""Run comparison: metrics are read, spec differences found, curves drawn; bad runs are clear errors."""

from __future__ import annotations

import json
import math

import pytest

from stackform.assemble import assemble, save
from stackform.assemble.viz import VizError
from stackform.assemble.viz.compare import legend_labels, plot_runs, summary_rows
from stackform.assemble.viz.runs import flatten, read_metrics, read_run, spec_differences
from tiny import fake_run, tiny_spec


@pytest.fixture
def runs(tmp_path):
    base = fake_run(tmp_path / "base", [], decay=10)
    deeper = fake_run(tmp_path / "deeper", ["model.n_layers=3", "train.optimizer.lr=0.003"], decay=20)
    rope = fake_run(tmp_path / "rope", ["model.positional=rope"], decay=15)
    return [read_run(p) for p in (base, deeper, rope)]


def test_flatten_makes_dotted_keys():
    flat = flatten({"model": {"layers": [{"repeat": 2}], "betas": [0.9, 0.95], "d": 4}})
    assert flat == {"model.layers.0.repeat": 2, "model.betas": [0.9, 0.95], "model.d": 4}


def test_spec_differences_lists_only_what_differs(runs):
    diffs = spec_differences([r.spec for r in runs])
    assert diffs[0] == {"model.n_layers": 2, "model.positional.type": "learned", "train.optimizer.lr": 0.001}
    assert diffs[1] == {"model.n_layers": 3, "model.positional.type": "learned", "train.optimizer.lr": 0.003}
    assert diffs[2]["model.positional.type"] == "rope" and "model.positional.base" not in diffs[2]
    labels = legend_labels(runs)
    assert labels[1] == "deeper: n_layers=3, positional.type=learned, train.optimizer.lr=0.003"


def test_compare_draws_every_run(runs, tmp_path):
    svg = plot_runs(runs, tmp_path / "curves.svg").read_text()
    assert svg.count("<path") > 10 and "deeper: n_layers=3" in svg and "validation" in svg
    png = plot_runs(runs, tmp_path / "curves.png", x="time", log_y=True).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    rows = summary_rows(runs)
    assert rows[0][:2] == ("base", "40") and float(rows[1][3]) == pytest.approx(5 * math.exp(-40 / 20) + 1.2, abs=1e-3)


def test_a_run_without_a_finite_val_loss_shows_a_dash(tmp_path):
    """A diverged run's validation losses are all NaN: its best is "—", not nan; a NaN among finite ones is passed over."""
    folder = fake_run(tmp_path / "diverged", [], decay=10)
    metrics = folder / "metrics.jsonl"
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    for r in records:
        if r["split"] == "val":
            r["loss"] = float("nan")
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    good = fake_run(tmp_path / "good", [], decay=10)
    with open(good / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"step": 45, "split": "val", "loss": float("nan")}) + "\n")
    rows = summary_rows([read_run(folder), read_run(good)])
    assert rows[0][3] == "—" and rows[1][3] == f"{5 * math.exp(-4) + 1.2:.4f}"


def test_null_losses_of_metrics_jsonl_are_gaps(tmp_path):
    """metrics.jsonl writes a loss that is not finite as null: compare reads it as NaN (no best, a gap)."""
    folder = fake_run(tmp_path / "diverged", [], decay=10)
    metrics = folder / "metrics.jsonl"
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    for r in records:
        if r["split"] == "val" or r["step"] >= 30:
            r["loss"] = None
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    run = read_run(folder)
    _, losses = run.curve("train")
    assert math.isnan(losses[-1]) and not math.isnan(losses[0])
    assert summary_rows([run])[0][2:] == ("nan", "—")
    assert plot_runs([run], tmp_path / "c.png").stat().st_size > 10_000


def test_run_spec_falls_back_to_spec_yaml(tmp_path):
    folder = fake_run(tmp_path / "r", [], decay=10)
    (folder / "model.safetensors").unlink()
    (folder / "spec.yaml").write_text(json.dumps(tiny_spec("decoder", n_layers=5)))  # JSON is YAML
    assert read_run(folder).spec.model.n_layers == 5


def test_bad_runs_are_one_line_errors(tmp_path):
    with pytest.raises(VizError, match="no such run folder"):
        read_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VizError, match="no metrics.jsonl"):
        read_run(tmp_path / "empty")
    folder = fake_run(tmp_path / "r", [], decay=10)
    metrics = folder / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 45, "split": "tr')  # a run still writing its last line
    assert len(read_metrics(metrics)) == len(read_metrics(metrics)) == 12
    metrics.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(VizError, match=r"metrics.jsonl:2: not a JSON line"):
        read_metrics(metrics)
    (folder / "model.safetensors").unlink()
    metrics.write_text("")
    with pytest.raises(VizError, match="needs model.safetensors or spec.yaml"):
        read_run(folder)
    other = fake_run(tmp_path / "s", [], decay=10)
    (other / "metrics.jsonl").write_text('{"step": 1, "split": "train"}\n')
    with pytest.raises(VizError, match="no run has loss records"):
        plot_runs([read_run(other)], tmp_path / "c.png")


def _drawn_axes(monkeypatch, runs, tmp_path):
    """plot_runs' axes, drawn (the figure is caught on its way to the file)."""
    import stackform.assemble.viz.compare as compare

    caught = []
    save = compare.save_figure
    monkeypatch.setattr(compare, "save_figure", lambda fig, path: caught.append(fig) or save(fig, path))
    plot_runs(runs, tmp_path / "c.png")
    caught[0].canvas.draw()
    return caught[0].axes[0]


def test_a_train_loss_with_one_record_is_drawn(monkeypatch, tmp_path):
    """A run shorter than log_every has one train record: a line through one point draws nothing, so it gets a marker."""
    run = read_run(fake_run(tmp_path / "short", [], decay=10, steps=0))
    (x,), (loss,) = run.curve("train")
    ax = _drawn_axes(monkeypatch, [run], tmp_path)
    assert any(x in line.get_xdata() and loss in line.get_ydata() and line.get_marker() not in ("None", "", " ", None)
               for line in ax.lines)


def test_the_train_validation_key_covers_no_point(monkeypatch, tmp_path):
    """A run whose loss ends high (upper right, where the key used to be fixed) stays visible."""
    folder = fake_run(tmp_path / "rising", [], decay=10)
    metrics = folder / "metrics.jsonl"
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    for r in records:
        r["loss"] = 1.0 + r["step"] / 8  # ends at the top right, as high as the other starts
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    ax = _drawn_axes(monkeypatch, [read_run(folder), read_run(fake_run(tmp_path / "falling", [], decay=10))], tmp_path)
    box = ax.get_legend().get_window_extent()
    for line in ax.lines:
        for px, py in ax.transData.transform(line.get_xydata()):
            assert not box.contains(px, py), (line.get_xydata(), box)
