"""The generation benchmark runs end to end at a tiny shape: every contestant decodes the same tokens."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("transformers")  # the benchmark compares with Hugging Face (optional extra `hf`)


def test_generation_bench_contestants_agree(capsys):
    from stackform.assemble.bench import generation, run_script

    code = run_script(generation.main, ["--shape", "tiny", "--new", "6", "--batches", "1", "2", "--rounds", "1",
                                        "--hf-static"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["1"], ["2"])]
    table = {(r[0], r[1]): r for r in rows}
    for batch in ("1", "2"):
        for name in ("stackform", "hf", "hf-static"):
            assert table[(batch, name)][-1] == "100%", out  # the same greedy tokens as stackform's generate
    assert re.search(r"^batch 2: stackform\S* / hf\S* = \d+\.\d\dx$", out, re.M), out  # best against best
