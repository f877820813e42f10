"""Fine-tuning an import: ``stackform train IMPORTED`` starts from the imported weights (its
validation loss is the imported model's, far below a random model's, and falls), with its
tokenizer; ``train.freeze`` keeps parameters fixed; LoRA trains only its adapters, saves them
in a small file, resumes exactly and merges into a plain model; a mismatch names the tensor."""

from __future__ import annotations

import json
import math

import pytest
import torch

transformers = pytest.importorskip("transformers")

from hf_tiny import TEXT, save_tiny_gpt2  # noqa: E402
from stackform.assemble import build_model, load, load_spec  # noqa: E402
from stackform.assemble.cli import main  # noqa: E402
from stackform.assemble.data import load_task  # noqa: E402
from stackform.assemble.train.evaluate import evaluate  # noqa: E402
from stackform.assemble.train.run import train  # noqa: E402


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """(import folder, data file): a tiny GPT-2 trained 15 steps by transformers on a text, imported."""
    root = tmp_path_factory.mktemp("ft")
    text = TEXT * 3
    save_tiny_gpt2(root / "hf", text, train_steps=15, seed=1)
    assert main(["import-hf", str(root / "hf"), "--out", str(root / "ours")]) == 0
    data = root / "data.txt"
    data.write_text(text)
    return root / "ours", data


def settings(data, steps=40, **extra) -> list[str]:
    base = {"train.data": f"{{type: text, path: {data}}}", "train.steps": steps, "train.batch_size": 8,
            "train.seq_len": 32, "train.eval_every": 1000, "train.eval_steps": 4, "train.log_every": 1,
            "train.schedule.warmup": 0, "train.optimizer.lr": 3e-3, "train.samples": 0, "train.device": "cpu"}
    base.update(extra)
    return [f"{key}={value}" for key, value in base.items()]


def records(run, split):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("split") == split]


def test_train_on_an_import_starts_from_its_loss_and_falls(imported, tmp_path):
    folder, data = imported
    result = train(str(folder), settings(data), out_dir=tmp_path / "run", quiet=True)
    spec, task = result.spec, load_task(result.spec)
    assert spec.train.init_from == str(folder.resolve())
    assert task.tokenizer.sha256 == load(folder).tokenizer.sha256  # the import's own tokenizer.json
    start = evaluate(load(folder), task, spec, torch.device("cpu"), None)["loss"]
    torch.manual_seed(0)
    random = evaluate(build_model(spec), task, spec, torch.device("cpu"), None)["loss"]
    first = records(tmp_path / "run", "train")[0]["loss"]  # the loss before the first update
    assert start < random - 1.0, (start, random)
    assert abs(first - start) < 0.3 < abs(first - random), (first, start, random)
    assert result.metrics["loss"] < start - 0.5, (result.metrics, start)
    assert (tmp_path / "run" / "tokenizer.json").read_bytes() == (folder / "tokenizer.json").read_bytes()
    assert load(tmp_path / "run").tokenizer is not None


def test_freeze_keeps_matching_parameters(imported, tmp_path):
    folder, data = imported
    result = train(str(folder), settings(data, steps=3, **{"train.freeze": '["embed.*", "layers.0.*"]'}),
                   out_dir=tmp_path / "run", quiet=True)
    before, after = load(folder).state_dict(), load(tmp_path / "run").state_dict()
    frozen = [n for n in before if n.startswith(("embed.", "stack.layers.0."))]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith("stack.layers.1."))
    assert result.step == 3


def test_a_freeze_pattern_matching_nothing_is_an_error(imported, tmp_path):
    folder, data = imported
    with pytest.raises(Exception, match=r"train\.freeze\.0: 'decoder\.\*' matches no parameter"):
        train(str(folder), settings(data, steps=2, **{"train.freeze": '["decoder.*"]'}), out_dir=tmp_path / "r",
              quiet=True)


def test_a_mismatch_names_tensor_shapes_and_key(imported, tmp_path):
    folder, data = imported
    with pytest.raises(Exception) as info:
        train(str(folder), settings(data, steps=2) + ["model.d_model=64"], out_dir=tmp_path / "r", quiet=True)
    message = str(info.value)
    assert "train.init_from" in message and "embed.weight is [" in message and "model.d_model" in message
    assert "\n" not in message


LORA = '{rank: 4, alpha: 8, targets: ["*attn.qkv", "*ffn.up"]}'


def test_lora_trains_adapters_only_resumes_exactly_and_merges(imported, tmp_path, capsys):
    folder, data = imported
    over = settings(data, steps=4, **{"train.lora": LORA})
    straight = train(str(folder), over, out_dir=tmp_path / "straight", quiet=True)
    train(str(folder), over, out_dir=tmp_path / "split", stop_at_step=2, quiet=True)
    resumed = train(resume=tmp_path / "split", quiet=True)
    assert resumed.step == straight.step == 4
    a, b = load(tmp_path / "straight").state_dict(), load(tmp_path / "split").state_dict()
    assert all(torch.equal(a[n], b[n]) for n in a)  # resume is exact with LoRA
    base = load(folder).state_dict()
    lora = [n for n in a if ".lora." in n]
    assert len(lora) == 2 * 2 * 2  # 2 layers x 2 targets x (a, b)
    assert all(torch.equal(base[n], a[n]) for n in base)  # the imported weights never move
    assert any(not torch.equal(a[n], torch.zeros_like(a[n])) for n in lora if n.endswith(".b"))
    adapter = tmp_path / "straight" / "adapter.safetensors"
    assert adapter.stat().st_size < (tmp_path / "straight" / "model.safetensors").stat().st_size / 4
    assert main(["merge-lora", str(tmp_path / "straight"), "--out", str(tmp_path / "merged")]) == 0
    merged, trained = load(tmp_path / "merged"), load(tmp_path / "straight")
    assert merged.spec.train.lora is None and merged.tokenizer is not None
    assert not any(".lora." in n for n in merged.state_dict())
    ids = torch.tensor([trained.tokenizer.encode("The return statement")])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids), trained(ids), rtol=0, atol=1e-5)
    assert main(["export-hf", str(tmp_path / "merged"), "--out", str(tmp_path / "hf")]) == 0
    capsys.readouterr()


def test_lora_target_matching_nothing_is_an_error(imported, tmp_path):
    folder, data = imported
    over = settings(data, steps=2, **{"train.lora": '{rank: 2, targets: ["*nothing*"]}'})
    with pytest.raises(Exception, match=r"train\.lora\.targets\.0: '\*nothing\*' matches no linear layer"):
        train(str(folder), over, out_dir=tmp_path / "r", quiet=True)


def test_import_spec_yaml_fine_tunes_too(imported):
    folder, _ = imported
    from stackform.assemble.train.run import resolve_spec

    spec = resolve_spec(str(folder / "spec.yaml"), [], None)
    assert spec.train.init_from == str(folder.resolve())
    assert spec.train.tokenizer.path == str(folder.resolve() / "tokenizer.json")
    assert not math.isnan(load_spec(str(folder / "spec.yaml")).model.vocab_size)


def test_resume_of_an_import_points_to_train(imported):
    folder, _ = imported
    with pytest.raises(Exception, match=rf"not a run folder .*; to fine-tune its weights, train it: stackform train"):
        train(resume=folder, quiet=True)


def test_validate_locates_patterns_that_match_nothing(capsys):
    assert main(["validate", "gpt-tiny", 'train.freeze=["decoder.*"]', 'train.lora={targets: ["*attn.qkv", "x"]}']) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith("override 'train.freeze=") and "train.freeze.0: 'decoder.*' matches no parameter" in err[0]
    assert err[1].startswith("override 'train.lora=") and "train.lora.targets.1: 'x' matches no linear layer" in err[1]
