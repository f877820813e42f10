"""The lm-evaluation-harness bridge: the three requests of lm_eval's LM interface, checked against each
other and a token-by-token computation; then lm_eval itself (if installed) on small local task files."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch

from stackform.assemble import load
from stackform.assemble.eval.errors import EvalError
from stackform.assemble.eval.scoring import Scorer

TEXTS = ["def f(x):\n    return x", "The return statement leaves the current function call. " * 2, "", "é ü"]


@pytest.fixture(scope="module")
def scorer(runs):
    return Scorer(load(runs("decoder")), batch_size=3)


@torch.no_grad()
def _one_by_one(model, text: str) -> float:
    """log p(text) as lm_eval's LM.loglikelihood_rolling defines it, one forward pass per byte: the
    targets go in disjoint chunks of max_len, each chunk's window being the max_len tokens up to its
    last target (the first window starts at eos)."""
    seq = [258] + list(text.encode())
    total, max_len = 0.0, model.spec.model.max_len
    for j in range(1, len(seq)):
        last = min(((j - 1) // max_len + 1) * max_len, len(seq) - 1)  # the last target of j's chunk
        context = torch.tensor([seq[max(0, last - max_len):j]])
        total += float(torch.log_softmax(model(context)[0, -1].float(), -1)[seq[j]])
    return total


def test_rolling_loglikelihood_predicts_each_token_once_in_lm_evals_windows(scorer):
    assert len(TEXTS[1].encode()) > 2 * scorer.max_len  # several windows
    got = scorer.loglikelihood_rolling(TEXTS)
    assert got == pytest.approx([_one_by_one(scorer.model, t) for t in TEXTS], abs=1e-3)
    assert got[2] == 0.0


def test_rolling_windows_are_lm_evals_own(scorer):
    utils = pytest.importorskip("lm_eval.utils")
    text = TEXTS[1] + TEXTS[0]
    ids = list(text.encode())
    windows = [utils.make_disjoint_window(w) for w in utils.get_rolling_token_windows(
        token_list=ids, prefix_token=258, max_seq_len=scorer.max_len, context_len=1)]
    rows = [(context + continuation, len(continuation)) for context, continuation in windows]
    expected = sum(logprob for logprob, _ in scorer._score(rows))
    assert scorer.loglikelihood_rolling([text])[0] == pytest.approx(expected, abs=1e-4)


def test_loglikelihood_follows_the_chain_rule_and_is_batch_independent(scorer, runs):
    pairs = [("def f(x):", "\n    return"), ("", "abc"), ("The return", " statement"), ("x", "")]
    got = scorer.loglikelihood(pairs)
    rolling = scorer.loglikelihood_rolling([c + t for c, t in pairs] + [c for c, _ in pairs])
    for i, (logprob, _) in enumerate(got):
        assert logprob == pytest.approx(rolling[i] - rolling[i + len(pairs)], abs=1e-3)  # log p(c+t) - log p(c)
    assert got[3] == (0.0, True)
    alone = Scorer(load(runs("decoder")), batch_size=1).loglikelihood(pairs)
    assert [g[0] for g in got] == pytest.approx([a[0] for a in alone], abs=1e-4)


def test_generate_until_is_greedy_and_stops_at_its_strings(scorer):
    (free,) = scorer.generate_until([("def ", {"until": [], "max_gen_toks": 6})])
    assert 0 < len(free.encode()) <= 6
    (logprob, greedy), = scorer.loglikelihood([("def ", free)])
    assert greedy and logprob < 0
    stop = free[2:4] or free[-1]
    (cut,) = scorer.generate_until([("def ", {"until": [stop], "max_gen_toks": 6})])
    assert cut == free[:free.index(stop)]


@pytest.mark.parametrize("kind", ["encoder", "encoder_decoder"])
def test_a_model_that_is_not_a_decoder_is_one_line(runs, kind):
    with pytest.raises(EvalError, match="the harness scores decoder-only language models"):
        Scorer(load(runs(kind)))


# ---- lm_eval itself, offline, on task files written here

TASKS = {
    "tiny_choice": {"output_type": "multiple_choice", "doc_to_text": "{{question}}", "doc_to_choice": "{{choices}}",
                    "doc_to_target": "{{answer}}",
                    "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]},
    "tiny_ppl": {"output_type": "loglikelihood_rolling", "doc_to_text": "", "doc_to_target": "{{text}}",
                 "metric_list": [{"metric": "bits_per_byte", "aggregation": "bits_per_byte",
                                  "higher_is_better": False}]},
    "tiny_gen": {"output_type": "generate_until", "doc_to_text": "{{question}}", "doc_to_target": "{{answer}}",
                 "generation_kwargs": {"until": ["\n"], "max_gen_toks": 4, "do_sample": False},
                 "metric_list": [{"metric": "exact_match", "aggregation": "mean",
                                  "higher_is_better": True}]},
}
DOCS = [{"question": f"Q{i}: 1+{i}=", "choices": [" a", " b", " c"], "answer": i % 3, "text": TEXTS[i % 2]}
        for i in range(4)]


def _task_folder(folder: Path) -> Path:
    import yaml

    (folder / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    for name, fields in TASKS.items():
        files = {"data_files": {"test": str(folder / "docs.jsonl")}}
        task = {"task": name, "dataset_path": "json", "dataset_kwargs": files, "test_split": "test", **fields}
        if name == "tiny_gen":  # answers as text for exact match
            task["doc_to_target"] = "{{choices[answer]}}"
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(task))
    return folder


@pytest.fixture
def offline(monkeypatch, tmp_path):
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    return _task_folder(tmp_path)


def test_lm_eval_runs_the_model_on_local_tasks(runs, offline, scorer):
    pytest.importorskip("lm_eval")
    import lm_eval
    from lm_eval.tasks import TaskManager

    from stackform.assemble.eval import harness  # registers "stackform"

    tasks = TaskManager(include_path=str(offline), include_defaults=False)
    out = lm_eval.simple_evaluate(model="stackform", model_args=f"run={runs('decoder')},device=cpu",
                                  tasks=list(TASKS), task_manager=tasks)
    results = out["results"]
    assert 0 <= results["tiny_choice"]["acc,none"] <= 1 and "exact_match,none" in results["tiny_gen"]
    texts = [d["text"] for d in DOCS]
    expected = -sum(scorer.loglikelihood_rolling(texts)) / math.log(2) / sum(len(t.encode()) for t in texts)
    assert results["tiny_ppl"]["bits_per_byte,none"] == pytest.approx(expected, rel=1e-4)
    assert lm_eval.api.registry.get_model("stackform") is harness.StackformLM


def test_the_console_script_is_lm_eval_with_the_model_registered(monkeypatch, capsys):
    """stackform-lm-eval runs lm_eval's own command line once "stackform" is registered (the real command
    indexes every task lm_eval ships, about a minute here: docs/training.md shows a run of it)."""
    pytest.importorskip("lm_eval")
    import lm_eval.__main__
    from lm_eval.api.registry import get_model

    from stackform.assemble.errors import CheckpointError
    from stackform.assemble.eval.harness_cli import main

    seen = []

    def cli_evaluate():
        seen.append(get_model("stackform").__name__)
        raise CheckpointError("nowhere: no such checkpoint file")  # what a bad run= raises inside lm_eval

    monkeypatch.setattr(lm_eval.__main__, "cli_evaluate", cli_evaluate)
    with pytest.raises(SystemExit) as info:
        main()
    assert seen == ["StackformLM"] and info.value.code == 2
    assert capsys.readouterr().err == "error: nowhere: no such checkpoint file\n"


def test_a_bad_run_is_one_stackform_error():
    pytest.importorskip("lm_eval")
    from stackform.assemble.eval.harness import StackformLM
    from stackform.registry import StackformError

    with pytest.raises(StackformError, match="^nowhere: no such checkpoint file$"):
        StackformLM(run="nowhere", device="cpu")
    with pytest.raises(EvalError, match="give the checkpoint as --model_args run=RUN"):
        StackformLM()
