"""Each schedule matches its formula."""

from __future__ import annotations

import math

import pytest

from stackform.assemble.train.schedule import lr_at
from stackform.specs.train import ScheduleSpec


def test_warmup_is_linear_then_cosine_to_the_floor():
    s = ScheduleSpec(type="cosine", warmup=10, min_lr_ratio=0.1)
    assert lr_at(s, 1e-3, 1, 110, 64) == pytest.approx(1e-4)
    assert lr_at(s, 1e-3, 10, 110, 64) == pytest.approx(1e-3)
    for step in (10, 35, 60, 85, 110):
        p = (step - 10) / 100
        expected = 1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))
        assert lr_at(s, 1e-3, step, 110, 64) == pytest.approx(expected)
    assert lr_at(s, 1e-3, 60, 110, 64) == pytest.approx(1e-3 * 0.55)
    assert lr_at(s, 1e-3, 500, 110, 64) == pytest.approx(1e-4)  # past the end: the floor


def test_linear_and_constant():
    linear = ScheduleSpec(type="linear", warmup=0, min_lr_ratio=0.0)
    assert [lr_at(linear, 1.0, s, 100, 64) for s in (1, 50, 100)] == pytest.approx([0.99, 0.5, 0.0])
    constant = ScheduleSpec(type="constant", warmup=4)
    assert [lr_at(constant, 2.0, s, 100, 64) for s in (1, 2, 4, 5, 99)] == pytest.approx([0.5, 1.0, 2.0, 2.0, 2.0])


def test_noam_is_the_papers_formula_and_peaks_at_warmup():
    s = ScheduleSpec(type="noam", warmup=4000)
    for step in (1, 100, 3999, 4000, 4001, 10_000, 100_000):
        expected = 512**-0.5 * min(step**-0.5, step * 4000**-1.5)
        assert lr_at(s, 1.0, step, 100_000, 512) == pytest.approx(expected)
    values = [lr_at(s, 1.0, step, 100_000, 512) for step in range(1, 10_000, 7)]
    peak = max(range(len(values)), key=values.__getitem__) * 7 + 1
    assert abs(peak - 4000) <= 7
    assert lr_at(s, 2.0, 10, 100, 512) == pytest.approx(2 * lr_at(s, 1.0, 10, 100, 512))  # lr scales it
