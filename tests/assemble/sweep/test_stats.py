"""The paired t-test and the t distribution (regularized incomplete beta) against known values,
and the report's verdicts on synthetic results whose answer is known."""

from __future__ import annotations

import math
import random

import pytest


from stackform.assemble.sweep.stats import betainc, paired_t_test, stdev, t_cdf, two_sided_p

# (t, df, P(T <= t)): from tables of Student's t (scipy.stats.t.cdf gives the same digits)
T_CDF = [(2.0, 5, 0.9490302605850709), (-1.0, 3, 0.19550110947788535), (0.5, 1, 0.6475836176504333),
         (1.812461122811676, 10, 0.95), (2.7764451051977987, 4, 0.975), (3.0, 30, 0.9973050179671741),
         (-4.0, 2, 0.028595479208968322), (0.0, 7, 0.5)]


@pytest.mark.parametrize("t, df, expected", T_CDF)
def test_t_cdf_known_values(t, df, expected):
    assert t_cdf(t, df) == pytest.approx(expected, abs=1e-9)
    assert t_cdf(-t, df) == pytest.approx(1 - expected, abs=1e-9)


@pytest.mark.parametrize("t, df", [(12.706204736174698, 1), (4.302652729749464, 2), (2.228138851986274, 10),
                                   (2.0422724563012373, 30)])
def test_two_sided_critical_values_give_p_005(t, df):
    assert two_sided_p(t, df) == pytest.approx(0.05, abs=1e-9)


def _density(x: float, df: float) -> float:
    return math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi) \
        * (1 + x * x / df) ** (-(df + 1) / 2)


@pytest.mark.parametrize("df", [1, 2, 3.5, 9, 40])
def test_t_cdf_is_the_integral_of_the_density(df):
    for t in (-3.0, -0.7, 0.2, 1.5, 5.0):  # Simpson's rule from 0 to t, plus one half
        n = 2000
        h = t / n
        total = _density(0, df) + _density(t, df) + sum((4 if i % 2 else 2) * _density(i * h, df) for i in range(1, n))
        assert t_cdf(t, df) == pytest.approx(0.5 + total * h / 3, abs=1e-10)


def test_t_tends_to_the_normal_and_betainc_closed_forms():
    for z in (-2.5, -1.0, 0.3, 1.96):
        assert t_cdf(z, 1e7) == pytest.approx(0.5 * (1 + math.erf(z / math.sqrt(2))), abs=1e-6)
    for x in (0.0, 0.1, 0.37, 0.5, 0.93, 1.0):
        assert betainc(1, 1, x) == pytest.approx(x)
        assert betainc(3, 1, x) == pytest.approx(x ** 3)
        assert betainc(0.5, 0.5, x) == pytest.approx(2 / math.pi * math.asin(math.sqrt(x)))
        assert betainc(2.5, 4, x) == pytest.approx(1 - betainc(4, 2.5, 1 - x))
    with pytest.raises(ValueError):
        betainc(0, 1, 0.5)


def test_paired_test_on_a_hand_computed_case():
    test = paired_t_test([1, 2, 3, 4], [1.1, 2.3, 3.2, 4.4])  # differences 0.1 0.3 0.2 0.4
    assert test.diff == pytest.approx(0.25)
    assert test.t == pytest.approx(0.25 / (stdev([0.1, 0.3, 0.2, 0.4]) / 2))
    assert test.p == pytest.approx(0.030466291662, abs=1e-9)


def test_paired_test_finds_a_real_shift_and_not_noise():
    rng = random.Random(0)
    base = [2.0 + rng.gauss(0, 0.2) for _ in range(8)]  # seeds differ a lot ...
    shifted = [b + 0.05 + rng.gauss(0, 0.005) for b in base]  # ... but the variant is better at each seed
    noise = [b + rng.gauss(0, 0.05) for b in base]
    assert paired_t_test(base, shifted).p < 1e-6
    assert paired_t_test(base, noise).p > 0.05
    assert paired_t_test(base, base).p == 1.0 and paired_t_test(base, base).diff == 0
    constant = paired_t_test(base, [b - 0.1 for b in base])
    assert constant.p == pytest.approx(0.0, abs=1e-9) and constant.diff == pytest.approx(-0.1)
    assert paired_t_test([1.0], [2.0]).p is None  # one seed: no test
    assert paired_t_test([1.0, 2.0], [math.nan, 2.0]).p is None  # a diverged run: no test


def _fake_run(run, loss: float, rate: float) -> None:
    """A finished run folder as metrics.jsonl and the two checkpoint headers describe it."""
    import json

    import torch
    from safetensors.torch import save_file

    run.folder.mkdir(parents=True)
    save_file({"x": torch.zeros(1)}, str(run.folder / "model.safetensors"))
    save_file({"x": torch.zeros(1)}, str(run.folder / "train_state.safetensors"),
              metadata={"stackform.train_state": json.dumps({"step": run.spec.train.steps})})
    lines = [{"step": 2, "split": "val", "loss": loss + 0.5}, {"step": 4, "split": "train", "loss": loss,
                                                                "tokens_per_s": rate},
             {"step": 4, "split": "val", "loss": loss}]
    (run.folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_report_on_synthetic_results_says_what_is_known(sweep_file, tmp_path):
    from stackform.assemble.sweep.plan import make_plan
    from stackform.assemble.sweep.report import markdown_report, terminal_report
    from stackform.assemble.sweep.results import collect

    path = sweep_file("base: base.yaml\naxes:\n  model.positional: [rope, learned, alibi, sinusoidal]\n"
                      "seeds: 6\nbudget: {steps: 4}\nout_dir: out\n")
    plan = make_plan(path)
    rng = random.Random(1)
    seed_effect = {s: rng.gauss(0, 0.3) for s in plan.sweep.seeds}  # seeds differ far more than the effects
    shift = {"rope": 0.0, "learned": 0.2, "alibi": 0.0, "sinusoidal": -0.1}
    for run in plan.runs:
        name = run.variant.axes["model.positional"]
        noise = rng.gauss(0, 0.003) if name != "alibi" else rng.gauss(0, 0.05)
        _fake_run(run, 2.0 + seed_effect[run.seed] + shift[name] + noise, 1000.0)
    results = collect(plan)
    by_name = {v.axes["model.positional"]: v for v in results.variants}
    assert results.baseline == by_name["rope"].index  # the base's own value
    assert by_name["learned"].test.diff == pytest.approx(0.2, abs=0.01) and by_name["learned"].test.p < 1e-6
    assert by_name["sinusoidal"].test.diff == pytest.approx(-0.1, abs=0.01) and by_name["sinusoidal"].test.p < 1e-6
    assert by_name["alibi"].test.p > 0.05
    assert by_name["rope"].spread == pytest.approx(stdev([2.0 + e for e in seed_effect.values()]), abs=0.01)
    table = terminal_report(results, sort="loss")
    lines = {line.split()[0]: line for line in table.splitlines() if line.split() and line.split()[0] in shift}
    assert "worse" in lines["learned"] and "better" in lines["sinusoidal"]
    assert "within noise" in lines["alibi"] and "baseline" in lines["rope"]
    order = [line.split()[0] for line in table.splitlines() if line.split() and line.split()[0] in shift]
    assert order[0] == "sinusoidal" and order[-1] == "learned"  # sorted by mean loss
    assert "| learned | 6 |" in markdown_report(results) and "1,000" in lines["rope"]
