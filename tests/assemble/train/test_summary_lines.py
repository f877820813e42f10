"""The words of the end-of-run summary match the numbers: a higher loss is never "lower"."""

from __future__ import annotations

import math

import pytest

from stackform.assemble.train.summary import _metric_lines


@pytest.mark.parametrize("loss, base, words", [
    (2.0, 4.0, "(50.0% lower)"),
    (4.632, 4.0, "(15.8% higher: not yet better than predicting each token's frequency)"),
    (4.0, 4.0, "(the same)"),
    (math.inf, 4.0, "(not comparable)"),
])
def test_mlm_summary_says_lower_or_higher_by_the_sign(loss, base, words):
    [line] = _metric_lines("mlm", {"loss": loss, "unigram_loss": base})
    assert line.endswith(f"vs unigram baseline {base:.4f} {words}"), line
    assert "-" not in line.split("baseline")[1]  # never a negative "lower"


def test_the_summary_prints_the_samples(tmp_path, make_spec):
    from types import SimpleNamespace

    from stackform.assemble.train.summary import summary
    from stackform.specs import load_spec

    spec = load_spec(make_spec(max_minutes=2))
    result = SimpleNamespace(spec=spec, stopped="time budget", step=3, elapsed_s=121.0, out_dir=tmp_path / "my run",
                             metrics={"loss": 1.0, "ppl": math.e, "bpb": 1.4}, samples=["[def ]f(x):\n    return", "[a]b"],
                             samples_error=None, skipped=0)
    text = summary(result, ("model.safetensors",))
    assert "  samples (samples.txt):\n    [def ]f(x):\n        return\n    [a]b\n" in text
    assert f"train longer with: stackform train --resume '{tmp_path}/my run' train.max_minutes=4.1  (a total" in text
