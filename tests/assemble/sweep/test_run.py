"""Running sweeps: every run a normal run folder; an interrupted sweep resumes (finished runs are
skipped, a half-finished one continues exactly); runs made by --plan's commands are collected;
the command's errors are one located line with nothing trained."""

from __future__ import annotations

import json
import shlex

from safetensors.torch import load_file

from stackform.assemble.cli import main
from stackform.assemble.sweep.execute import execute, run_status
from stackform.assemble.sweep.plan import make_plan
from stackform.assemble.train.run import train

SWEEP = """
    base: base.yaml
    axes:
      model.positional: [learned, rope]
    seeds: 2
    budget: {steps: 4}
    out_dir: out
    """


def _final_losses(plan) -> dict[str, float]:
    out = {}
    for run in plan.runs:
        records = [json.loads(line) for line in (run.folder / "metrics.jsonl").read_text().splitlines()]
        out[run.name] = [r["loss"] for r in records if r["split"] == "val"][-1]
    return out


def test_interrupted_sweep_resumes_exactly_and_skips_finished_runs(sweep_file, tmp_path, capsys):
    straight = make_plan(sweep_file(SWEEP.replace("out_dir: out", "out_dir: straight")))
    assert execute(straight, quiet=True) == 0
    assert all(run_status(run) == "done" for run in straight.runs)

    plan = make_plan(sweep_file(SWEEP))
    first, half = plan.runs[0], plan.runs[1]  # as a sweep stopped during its second run leaves them
    train(plan.sweep.base_ref, first.overrides(), out_dir=first.folder, quiet=True)
    train(plan.sweep.base_ref, half.overrides(), out_dir=half.folder, stop_at_step=2, quiet=True)
    assert [run_status(run) for run in plan.runs] == ["done", "partial", "new", "new"]
    untouched = (first.folder / "model.safetensors").stat().st_mtime_ns
    assert execute(plan) == 0
    out = capsys.readouterr().out
    assert "4 runs (2 variants x 2 seeds) in out; 1 done, 3 to train" in out
    assert "[1/3] resuming positional=learned, seed 1" in out and "[2/3] training positional=rope, seed 0" in out
    assert (first.folder / "model.safetensors").stat().st_mtime_ns == untouched  # skipped, not retrained
    assert all(run_status(run) == "done" for run in plan.runs)
    assert _final_losses(plan) == _final_losses(straight)  # the resumed run ends where a straight one does
    for a, b in zip(plan.runs, straight.runs):
        wa, wb = load_file(a.folder / "model.safetensors"), load_file(b.folder / "model.safetensors")
        assert all((wa[k] == wb[k]).all() for k in wa), a.name


def test_runs_made_by_plan_commands_are_collected(sweep_file, tmp_path, capsys):
    path = sweep_file(SWEEP)
    assert main(["sweep", str(path), "--plan"]) == 0
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == 4 and all(c.startswith("stackform train base.yaml ") for c in commands)
    for command in commands[:3]:  # a cluster ran three of the four
        assert main([*shlex.split(command)[1:], "--quiet"]) == 0
    capsys.readouterr()
    assert main(["sweep", str(path), "--collect", "--sort", "loss"]) == 0
    out = capsys.readouterr().out
    assert "1 of 4 runs not finished (0 half-done), left out: positional-rope.s1" in out
    report = (tmp_path / "out" / "sweep.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| learned") or line.startswith("| rope")]
    assert len(rows) == 2 and "| rope | 1 |" in report and "| learned | 2 |" in report
    assert "n/a (1 seed)" in report  # one paired seed: no test
    assert (tmp_path / "out" / "sweep.png").stat().st_size > 10_000
    assert main(["sweep", str(path), "--plan"]) == 0  # done runs are commented out, the last one is left
    lines = capsys.readouterr().out.splitlines()
    assert [line.startswith("# done: ") for line in lines] == [True, True, True, False]


def test_errors_are_one_located_line_and_nothing_runs(sweep_file, tmp_path, capsys):
    path = sweep_file(SWEEP.replace("[learned, rope]", "[learned, rop]"))
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: sweep.yaml:3:31: model.positional.type: unknown positional 'rop'")
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    good = sweep_file(SWEEP)
    for argv, message in ((["--parallel", "0"], "--parallel 0: give at least 1 process"),
                          (["--sort", "positonal"], "--sort positonal: 'positonal' is not an axis"),
                          (["--collect"], "no finished run of this sweep yet"),
                          (["seeds=0"], "override 'seeds=0':1:7: seeds: a count above 0")):
        assert main(["sweep", str(good), *argv]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_parallel_runs_are_processes_with_their_own_logs(sweep_file, tmp_path):
    path = sweep_file(SWEEP.replace("seeds: 2", "seeds: 1").replace("{steps: 4}", "{steps: 2}"))
    assert main(["sweep", str(path), "--parallel", "2", "--quiet"]) == 0
    plan = make_plan(path)
    assert all(run_status(run) == "done" for run in plan.runs)
    assert all((run.folder / "sweep.log").is_file() for run in plan.runs)
    assert (tmp_path / "out" / "sweep.md").is_file()
