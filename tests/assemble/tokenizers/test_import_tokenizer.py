"""Tokenizers travel with imports: ``import-hf`` copies tokenizer.json, ``generate --prompt`` on the
import gives transformers' own greedy tokens, ``attention --text`` reads it, ``export-hf`` writes it
back, and a model without a tokenizer refuses text in one line naming ``--ids``."""

from __future__ import annotations

import shutil

import pytest
import torch

transformers = pytest.importorskip("transformers")

from hf_tiny import TEXT, save_tiny_gpt2  # noqa: E402
from stackform.assemble import load  # noqa: E402
from stackform.assemble.cli import main  # noqa: E402


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    hf, tok = save_tiny_gpt2(root / "hf", TEXT, seed=3)
    assert main(["import-hf", str(root / "hf"), "--out", str(root / "ours")]) == 0
    return root, hf, tok


PROMPTS = ["The quick brown", "A stitch in time", "rain in Spain", "x"]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_generate_prompt_matches_transformers(capsys, imported, prompt):
    root, hf, tok = imported
    code, out, err = run(capsys, "generate", root / "ours", "--prompt", prompt, "--max-new", 12,
                         "--temperature", 0, "--device", "cpu")
    assert code == 0, err
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    theirs = hf.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id,
                         eos_token_id=None)[0, ids.shape[1]:]
    assert out == prompt + tok.decode(theirs.tolist()) + "\n"
    model = load(root / "ours")
    assert model.tokenizer.prompt(prompt) == ids[0].tolist()


def test_import_folder_carries_the_tokenizer(imported):
    root, _, tok = imported
    assert (root / "ours" / "tokenizer.json").read_bytes() == (root / "hf" / "tokenizer.json").read_bytes()
    assert (root / "ours" / "tokenizer_config.json").is_file()
    spec_text = (root / "ours" / "spec.yaml").read_text()
    assert "tokenizer: {type: file, path: tokenizer.json}" in spec_text and "init_from: ." in spec_text
    model = load(root / "ours" / "model.safetensors")
    assert model.tokenizer.encode("The quick brown fox") == tok("The quick brown fox")["input_ids"]


def test_attention_reads_text(capsys, imported, tmp_path):
    root, _, tok = imported
    code, out, err = run(capsys, "attention", root / "ours", "--text", "The quick brown fox", "--out",
                         tmp_path / "a.png")
    assert code == 0, err
    n = len(tok("The quick brown fox")["input_ids"])
    assert f"x {n} queries x {n} keys" in out


def test_export_writes_the_tokenizer_back(imported, tmp_path):
    root, hf, tok = imported
    assert main(["export-hf", str(root / "ours"), "--out", str(tmp_path / "back")]) == 0
    again = transformers.AutoTokenizer.from_pretrained(tmp_path / "back")
    assert again("rain in Spain")["input_ids"] == tok("rain in Spain")["input_ids"]
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back")
    for (name, a), b in zip(hf.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), name


def test_no_tokenizer_is_one_line_naming_ids(capsys, imported, tmp_path):
    root, hf, tok = imported
    bare = tmp_path / "bare"
    shutil.copytree(root / "hf", bare)
    (bare / "tokenizer.json").unlink()
    code, out, _ = run(capsys, "import-hf", bare, "--out", tmp_path / "ours")
    assert code == 0 and "no tokenizer.json in the folder" in out
    code, out, err = run(capsys, "generate", tmp_path / "ours", "--prompt", "The quick", "--device", "cpu")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--ids" in err and "no tokenizer" in err
    ids = tok("The quick")["input_ids"]
    code, out, err = run(capsys, "generate", tmp_path / "ours", "--ids", ",".join(map(str, ids)), "--max-new", 5,
                         "--temperature", 0, "--device", "cpu")
    assert code == 0, err
    theirs = hf.generate(torch.tensor([ids]), max_new_tokens=5, do_sample=False, pad_token_id=tok.eos_token_id,
                         eos_token_id=None)[0, len(ids):]
    assert out.split() == [str(i) for i in theirs.tolist()]


def test_a_changed_tokenizer_file_is_refused(capsys, imported, tmp_path):
    root, _, _ = imported
    copy = tmp_path / "copy"
    shutil.copytree(root / "ours", copy)
    text = (copy / "tokenizer.json").read_text()
    (copy / "tokenizer.json").write_text(text.replace('"the"', '"thx"', 1) if '"the"' in text else text + " ")
    code, _, err = run(capsys, "generate", copy, "--prompt", "The", "--device", "cpu")
    assert code == 2 and "SHA-256" in err and err.count("\n") == 1
