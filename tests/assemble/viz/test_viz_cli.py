"""``stackform attention`` and ``stackform compare``: files written, errors one line and exit 2."""

from __future__ import annotations

import pytest

from stackform.assemble import save
from stackform.assemble.cli import main
from tiny import fake_run, tiny_model


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def seq2seq_run(tmp_path):
    save(tiny_model("encoder_decoder"), tmp_path / "run" / "model.safetensors")
    return tmp_path / "run"


def test_attention_writes_heatmaps_and_page(capsys, tmp_path, seq2seq_run):
    png, page = tmp_path / "attn.png", tmp_path / "attn.html"
    code, out, err = run(capsys, "attention", seq2seq_run, "--text", "12", "--tgt", "ab", "--out", png, "--html", page)
    assert code == 0, err
    assert "encoder-decoder attention: 2 layers x 2 heads x 3 queries x 2 keys" in out
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 20_000
    assert page.stat().st_size > 5_000 and "encoder-decoder attention" in page.read_text()


def test_attention_one_layer_and_head_of_a_decoder(capsys, tmp_path):
    save(tiny_model("decoder"), tmp_path / "m.safetensors")
    code, out, _ = run(capsys, "attention", tmp_path / "m.safetensors", "--text", "hi", "--max-new", "2",
                       "--layer", "1", "--head", "0", "--out", tmp_path / "one.svg")
    assert code == 0 and "decoder self-attention: 2 layers x 2 heads x 5 queries x 5 keys" in out
    assert "layer 1 head 0" in (tmp_path / "one.svg").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--text", "hi"], "nothing to write; give --out FILE.png and/or --html FILE.html"),
    (["--text", "hi", "--layer", "7", "--out", "x.png"], "--layer 7: out of range; the encoder self-attention has 2"),
    (["--text", "hi", "--head", "2", "--out", "x.png"], "--head 2: out of range"),
    (["--text", "x" * 25, "--out", "x.png"], "text (the source) is 25 tokens long, more than max_len 24"),
    (["--text", "hi", "--tgt", "y" * 24, "--out", "x.png"], "tgt (after <bos>) is 25 tokens long"),
    (["--text", "", "--out", "x.png"], "text: empty"),
    (["--text", "hi", "--out", "x.bmp"], "--out x.bmp: unknown picture format"),
    (["--text", "hi", "--html", "x.txt"], "--html x.txt: the page needs an .html file name"),
])
def test_attention_errors(capsys, tmp_path, seq2seq_run, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "attention", seq2seq_run, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("x.*"))


@pytest.mark.parametrize("flag, target, message", [
    ("--html", "BAD/PATH/x.html", "--html BAD/PATH/x.html: the folder BAD/PATH does not exist"),
    ("--html", "afile/x.html", "--html afile/x.html: afile is a file, not a folder"),
    ("--html", "adir.html", "--html adir.html: is a folder; give a file name"),
    ("--out", "BAD/PATH/x.png", "--out BAD/PATH/x.png: the folder BAD/PATH does not exist"),
    ("--out", "afile/x.png", "--out afile/x.png: afile is a file, not a folder"),
    ("--out", "adir.png", "--out adir.png: is a folder; give a file name"),
])
def test_attention_output_paths_are_checked_before_the_model_runs(capsys, tmp_path, seq2seq_run, monkeypatch,
                                                                   flag, target, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("keep")
    (tmp_path / "adir.html").mkdir()
    (tmp_path / "adir.png").mkdir()

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output path was checked")

    monkeypatch.setattr("stackform.assemble.cli.attention.load", no_model)
    code, out, err = run(capsys, "attention", seq2seq_run, "--text", "hi", flag, target)
    assert (code, out, err) == (2, "", f"error: {message}\n")
    assert (tmp_path / "afile").read_text() == "keep" and not any((tmp_path / "adir.html").iterdir())


def test_attention_missing_run(capsys, tmp_path):
    code, _, err = run(capsys, "attention", tmp_path / "nope", "--text", "a", "--out", tmp_path / "a.png")
    assert code == 2 and "nope" in err and len(err.strip().splitlines()) == 1


def test_compare_command(capsys, tmp_path):
    a = fake_run(tmp_path / "a", [], decay=10)
    b = fake_run(tmp_path / "b", ["model.n_layers=1"], decay=20)
    code, out, err = run(capsys, "compare", a, b, "--out", tmp_path / "curves.png")
    assert code == 0, err
    assert "b: n_layers=1" in out and (tmp_path / "curves.png").stat().st_size > 20_000
    assert "not comparable" not in out
    code, _, err = run(capsys, "compare", a, tmp_path / "missing", "--out", tmp_path / "c.png")
    assert code == 2 and "missing: no such run folder" in err
    code, _, err = run(capsys, "compare", a, a, "--out", tmp_path / "c.png")
    assert code == 2 and "given twice" in err


def test_compare_says_when_losses_are_not_comparable(capsys, tmp_path):
    """A causal LM, an MLM encoder and a seq2seq run: one line says why, and the picture is still drawn."""
    a = fake_run(tmp_path / "gpt", [], decay=10)
    b = fake_run(tmp_path / "bert", [], decay=20, kind="encoder")
    c = fake_run(tmp_path / "t5", [], decay=15, kind="encoder_decoder")
    code, out, err = run(capsys, "compare", a, b, c, "--out", tmp_path / "curves.png")
    assert code == 0, err
    notes = [line for line in out.splitlines() if "not comparable" in line]
    assert notes == ["note: these losses are not comparable: the runs have different tasks "
                     "(gpt: causal_lm, bert: mlm, t5: seq2seq), so each loss is per target token of a "
                     "different prediction"]
    assert (tmp_path / "curves.png").stat().st_size > 20_000
