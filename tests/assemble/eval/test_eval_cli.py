"""``stackform eval``: the metrics training reports, for any checkpoint, on its data or other data."""

from __future__ import annotations

import json

import pytest

from stackform.assemble.cli import main


def _eval(capsys, *args: str) -> dict:
    assert main(["eval", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _last_val(run) -> dict:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["split"] == "val"][-1]


@pytest.mark.parametrize("kind, keys", [("decoder", ("loss", "ppl", "bpb")),
                                        ("encoder", ("loss", "ppl", "unigram_loss")),
                                        ("encoder_decoder", ("loss", "ppl", "exact_match"))])
def test_eval_repeats_the_runs_own_validation_metrics(runs, capsys, kind, keys):
    run = runs(kind)
    got = _eval(capsys, run, "--batches", 2)  # the 2 batches of train.eval_steps
    want = _last_val(run)
    assert got["step"] == 4 and got["split"] == "val" and got["batches"] == 2
    for key in keys:
        assert got[key] == pytest.approx(want[key], rel=1e-5), key


def test_eval_of_the_best_checkpoint_and_of_the_train_split(runs, capsys):
    run = runs("decoder")
    best = _eval(capsys, run / "best.safetensors", "--batches", 2)
    vals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert best["loss"] == pytest.approx(min(r["loss"] for r in vals if r["split"] == "val"), rel=1e-5)
    whole = _eval(capsys, run, "--split", "train", "--batches", 3, "--batch-size", 2)
    assert whole["split"] == "train" and whole["batches"] == 3


def test_other_data_by_path_or_mapping_relative_to_the_cwd(runs, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "held.jsonl").write_text("".join(json.dumps({"body": f"line {i} of held-out text"}) + "\n"
                                                 for i in range(30)))
    by_map = _eval(capsys, runs("decoder"), "--data", "{type: jsonl, path: held.jsonl, field: body}", "--split", "all")
    windows = len(range(0, 30 * 26 - 17 + 1, 16))  # 30 records of 25 bytes + eos; windows of 17, stride 16
    assert by_map["data"] == "held.jsonl" and by_map["batches"] == -(-windows // 4)
    (tmp_path / "held.txt").write_text("line of held-out text\n" * 40)
    by_path = _eval(capsys, runs("decoder"), "--data", "held.txt", "--split", "all")
    assert by_path["data"] == "held.txt" and by_path["loss"] > 0


@pytest.mark.parametrize("args, message", [
    (["--data", "{type: jsonl}"], "--data {type: jsonl}: train.data.path: required key 'path' is missing"),
    (["--data", "bad.jsonl"], "bad.jsonl:2: not a JSON line"),
    (["--data", "{type: jsonl, path: bad.jsonl, field: x}"], "bad.jsonl:1: no field 'x' (fields: text)"),
    (["--data", "pairs.tsv"], "pairs data is made of pairs (seq2seq); task causal_lm needs text"),
    (["--batches", "0"], "--batches 0: give a whole number of at least 1"),
])
def test_bad_inputs_are_one_line_and_exit_2(runs, capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\n{"text": \n')
    (tmp_path / "pairs.tsv").write_text("a\tb\n" * 5)
    assert main(["eval", str(runs("decoder")), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().endswith("no such checkpoint file")


def test_the_text_output_names_the_checkpoint_step_and_metrics(runs, capsys):
    assert main(["eval", str(runs("decoder")), "--batches", "1"]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first.endswith("(step 4) on builtin 'pydoc', val split, 1 batches")
    assert "nats/token" in second and "perplexity" in second and "bits per byte" in second
