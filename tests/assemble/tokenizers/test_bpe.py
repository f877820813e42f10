"""``train.tokenizer: bpe``: trained on the training split once (cached), saved in the run folder and
named by the checkpoint, so ``load``, ``generate --prompt`` and ``attention --text`` read text; the
spec's ids are checked against the tokenizer with located errors; the text split keeps every byte."""

from __future__ import annotations

import json
import random
import sys

import pytest
import torch

pytest.importorskip("tokenizers")

from stackform.assemble import load  # noqa: E402
from stackform.assemble.cli import main  # noqa: E402
from stackform.assemble.tokenizers.bpe import train_bpe_json  # noqa: E402
from stackform.assemble.tokenizers.corpus import text_pieces  # noqa: E402
from stackform.assemble.tokenizers.hf import TextTokenizer, TokenizerError, hf_tokenizers  # noqa: E402
from stackform.assemble.train.run import train  # noqa: E402

TEXT = "def main():\n    return 42  # the answer\n" * 60 + "Grüße, 世界! naïve café\n" * 40

TINY = ["model.d_model=32", "model.n_heads=2", "model.n_layers=1", "model.ffn.hidden=64", "model.max_len=32",
        "model.vocab_size=300", "model.pad_id=0", "model.bos_id=1", "model.eos_id=2",
        "train.tokenizer={type: bpe, vocab_size: 300}", "train.steps=2", "train.schedule.warmup=0",
        "train.max_minutes=null", "train.batch_size=2", "train.eval_steps=1", "train.samples=1",
        "train.sample_tokens=4", "train.device=cpu"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bpe")
    (root / "data.txt").write_text(TEXT)
    result = train("gpt-tiny", TINY + [f"train.data={{type: text, path: {root / 'data.txt'}}}"],
                   out_dir=root / "run", quiet=True)
    return root, result


def test_the_run_folder_and_checkpoint_carry_the_tokenizer(run):
    root, result = run
    tok = TextTokenizer.from_file(root / "run" / "tokenizer.json")
    from safetensors import safe_open

    with safe_open(str(root / "run" / "model.safetensors"), "pt") as handle:
        named = json.loads(handle.metadata()["stackform.tokenizer"])
    assert named["file"] == "tokenizer.json" and named["sha256"] == tok.sha256
    model = load(root / "run")
    assert model.tokenizer.sha256 == tok.sha256 and model.tokenizer.eos_id == 2
    assert model.tokenizer.decode(model.tokenizer.encode("return 42")) == "return 42"
    assert tok.size <= 300 and len(tok.encode("return 42")) < len("return 42")  # merges learned


def test_bpe_is_trained_once_then_cached(run, monkeypatch, tmp_path):
    root, _ = run
    import stackform.assemble.tokenizers.bpe as bpe

    monkeypatch.setattr(bpe, "train_bpe_json", lambda *a, **k: pytest.fail("trained again"))
    again = train("gpt-tiny", TINY + [f"train.data={{type: text, path: {root / 'data.txt'}}}"],
                  out_dir=tmp_path / "again", quiet=True)
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == (root / "run" / "tokenizer.json").read_bytes()
    assert again.step == 2


def test_generate_and_attention_take_text(run, capsys, tmp_path):
    root, _ = run
    assert main(["generate", str(root / "run"), "--prompt", "def main", "--max-new", "5", "--temperature", "0",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    model = load(root / "run")
    ids = torch.tensor([model.tokenizer.prompt("def main")])
    assert ids[0, 0] == 2  # eos starts a document, as in the training stream
    from stackform.assemble.generation import generate

    new = generate(model, ids, 5, temperature=0)[0, ids.shape[1]:].tolist()
    assert out == "def main" + model.tokenizer.decode(new) + "\n"
    assert main(["attention", str(root / "run"), "--text", "Grüße", "--out", str(tmp_path / "a.png")]) == 0


def test_resume_reads_the_runs_own_tokenizer(run, monkeypatch):
    root, _ = run
    import stackform.assemble.tokenizers.bpe as bpe

    monkeypatch.setattr(bpe, "cached_bpe_json", lambda *a, **k: pytest.fail("a resume must not make a tokenizer"))
    result = train(resume=root / "run", overrides=["train.steps=3"], quiet=True)
    assert result.step == 3


@pytest.mark.parametrize("seed", range(6))
def test_text_split_keeps_every_byte_in_order(seed):
    rng = random.Random(seed)
    alphabet = "ab c\n\té世🙂"
    docs = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 400))) for _ in range(rng.randrange(1, 6))]
    pieces = text_pieces([d.encode() for d in docs], 0.2)
    for index, doc in enumerate(docs):
        assert "".join(t for _, i, t in pieces if i == index and t) == doc
        assert sum(1 for _, i, t in pieces if i == index and t is None) == 1
    assert all("\ufffd" not in t for _, _, t in pieces if t)  # cuts fall on character starts


def test_token_bytes_count_the_text(run):
    root, _ = run
    tok = TextTokenizer.from_file(root / "run" / "tokenizer.json", pad_id=0, bos_id=1, eos_id=2)
    lengths = tok.token_bytes(300)
    for text in ("Grüße, 世界!", "    return 42", TEXT[:500]):
        assert int(lengths[tok.encode(text)].sum()) == len(text.encode())  # bits per byte count real bytes


def test_a_spec_whose_ids_do_not_fit_is_located(capsys):
    code = main(["validate", "gpt-tiny", "train.tokenizer=bpe", "model.vocab_size=300"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[0].startswith("zoo/gpt-tiny.yaml:9:") and "model.pad_id: 256, but the bpe tokenizer's <pad> is id 0" \
        in err[0] and len(err) == 3
    assert main(["validate", "gpt-tiny", "train.tokenizer=bpe"]) == 2  # 259 ids cannot hold bytes + 4 specials
    assert "model.vocab_size: 259 is too small for a bpe tokenizer" in capsys.readouterr().err


def test_a_tokenizer_file_larger_than_the_vocab_is_located(run, capsys):
    root, _ = run
    code = main(["validate", "gpt-tiny", f"train.tokenizer={{type: file, path: {root / 'run' / 'tokenizer.json'}}}",
                 "model.vocab_size=100", "model.eos_id=2", "model.pad_id=0", "model.bos_id=1"])
    err = capsys.readouterr().err
    assert code == 2 and "model.vocab_size: 100, but" in err and "set model.vocab_size to at least" in err


def test_without_the_package_one_line_names_pip(monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(TokenizerError, match=r"pip install 'stackform\[tokenizers\]'"):
        hf_tokenizers()
    with pytest.raises(TokenizerError, match="pip install"):
        train_bpe_json(["abc"], 300)


def test_eval_of_a_bpe_run_repeats_its_validation_metrics(run, capsys, monkeypatch):
    """``stackform eval`` reads the run's tokenizer.json: the same validation tokens, and bits per byte
    counted over each BPE token's bytes (a byte tokenizer in its place gives other numbers)."""
    from stackform.assemble.cli import main

    root, _ = run
    monkeypatch.setenv("STACKFORM_NO_BAR", "1")
    lines = [json.loads(line) for line in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    want = [r for r in lines if r.get("split") == "val"][-1]
    assert main(["eval", str(root / "run"), "--batches", "1", "--json"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("loss", "bpb"):
        assert got[key] == pytest.approx(want[key], rel=1e-5), key
    assert main(["eval", str(root / "run"), "--split", "train"]) == 2
    assert "--split val" in capsys.readouterr().err
