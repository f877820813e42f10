"""Plans: the budget as train.steps / max_minutes, parameter matching within 2% of the base, one run
folder per variant and seed, and --plan's commands that reproduce each run's spec."""

from __future__ import annotations

import pytest

from stackform.specs import SpecError, load_spec
from stackform.assemble.sweep.match import count_params, forward_flops_per_token
from stackform.assemble.sweep.plan import make_plan, tokens_per_step

AXES = "base: base.yaml\naxes:\n  model.n_layers: [1, 2]\n"


def test_token_minute_flop_and_step_budgets(sweep_file):
    plan = make_plan(sweep_file(AXES + "budget: {tokens: 100}\n"))
    assert {run.spec.train.steps for run in plan.runs} == {100 // (2 * 16)}  # batch 2 x max_len 16
    assert all(run.spec.train.max_minutes is None for run in plan.runs)
    plan = make_plan(sweep_file(AXES + "budget: {minutes: 0.5}\n"))
    assert {run.spec.train.max_minutes for run in plan.runs} == {0.5}
    plan = make_plan(sweep_file(AXES + "budget: {flops: 1.0e+8}\n"))
    for run in plan.runs:  # equal compute: the deeper variant gets fewer steps
        per_token = 3 * forward_flops_per_token(run.spec)
        assert run.spec.train.steps == int(1e8 / per_token // tokens_per_step(run.spec))
    assert plan.runs[0].spec.train.steps > plan.runs[-1].spec.train.steps


def test_a_budget_below_one_step_is_located(sweep_file):
    path = sweep_file(AXES + "budget: {tokens: 20}\n")
    with pytest.raises(SpecError, match=r"sweep.yaml:4:18: budget.tokens: 20 tokens is less than one step"):
        make_plan(path)


def test_runs_are_folders_per_variant_and_seed_and_commands_reproduce_them(sweep_file):
    plan = make_plan(sweep_file(AXES + "seeds: [4, 9]\nbudget: {steps: 3}\nout_dir: out\n"))
    assert [(run.variant.index, run.seed) for run in plan.runs] == [(0, 4), (0, 9), (1, 4), (1, 9)]
    assert len({run.folder for run in plan.runs}) == 4 and all(run.folder.parent.name == "out" for run in plan.runs)
    for run in plan.runs:
        assert run.spec.train.seed == run.seed and run.spec.train.steps == 3
        command = plan.command(run).split()
        assert command[:3] == ["stackform", "train", "base.yaml"] and command[-2:] == ["--out-dir", str(run.folder)]
        assert load_spec("base.yaml", run.overrides()) == run.spec


WIDE = "overrides: {model.d_model: 256, model.ffn.hidden: 512}\n"  # wide enough for 2% steps of d_model


@pytest.mark.parametrize("axes, adjusted", [
    ("model.n_layers: [1, 2, 3]", "model.ffn.hidden"),  # 3 layers: d_model down, then the FFN width
    ("model.ffn: [{type: mlp, hidden: 8}, {type: mlp, hidden: 128}]", "model.d_model"),  # hidden fixed by the axis
])
def test_match_params_brings_every_variant_within_2_percent(sweep_file, axes, adjusted):
    plan = make_plan(sweep_file(f"base: base.yaml\n{WIDE}axes:\n  {axes}\nmatch: params\n"))
    target = count_params(plan.sweep.base)
    for run in plan.runs:
        assert abs(count_params(run.spec) - target) <= 0.02 * target, run.variant.label
        assert run.spec.model.d_model % run.spec.model.n_heads == 0
    assert plan.notes and all(adjusted in note for note in plan.notes)
    assert any(abs(count_params(v.spec) - target) > 0.02 * target for v in plan.sweep.variants)  # it had work to do
    unmatched = make_plan(sweep_file(f"base: base.yaml\n{WIDE}axes:\n  {axes}\n"))
    assert [count_params(r.spec) for r in unmatched.runs] != [count_params(r.spec) for r in plan.runs]


def test_match_params_says_when_it_cannot(sweep_file):
    path = sweep_file("base: base.yaml\naxes:\n  model.d_model: [16, 64]\n  model.ffn.hidden: [32]\nmatch: params\n")
    with pytest.raises(SpecError, match=r"sweep.yaml:5:8: match: cannot bring variant d_model=64, hidden=32"):
        make_plan(path)
