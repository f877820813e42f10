"""``stackform bench --variants [--peers]`` runs end to end at a tiny length (no timings are checked)."""

from __future__ import annotations

import pytest
import torch

from stackform.assemble.bench.variants import run_variants, table


def test_variants_and_their_hugging_face_peers_run():
    pytest.importorskip("transformers")
    rows = run_variants([64], torch.device("cpu"), repeats=1, warmup=0, memory=False, log=lambda _: None,
                        with_peers=True)
    by_name = {r["variant"]: r for r in rows}
    assert by_name["plain (rope, causal)"]["kernel"] == "sdpa"
    compared = {r["variant"] for r in rows if r["vs_peer"] is not None}
    assert compared == {"alibi", "relative_bias (T5)", "sliding_window 256"}
    assert {"hf bloom (alibi)", "hf t5 (bias)", "hf mistral (window)"} <= set(by_name)
    assert "the speed of hf bloom (alibi)" in table(rows)
