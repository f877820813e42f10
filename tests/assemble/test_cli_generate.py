"""``stackform generate``: a decoder continues a prompt, an encoder-decoder transforms a source,
and wrong models or flags exit 2 with one clear line."""

from __future__ import annotations

import pytest
import torch

from stackform.assemble import assemble, generate, generate_seq2seq, load, save
from stackform.assemble.cli import main
from stackform.assemble.tokenizer import ByteTokenizer


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run folders of tiny random models: {kind: folder with model.safetensors}."""
    root = tmp_path_factory.mktemp("runs")
    folders = {}
    for kind, zoo in (("decoder", "gpt-tiny"), ("encoder_decoder", "transformer-tiny"), ("encoder", "bert-tiny")):
        folders[kind] = root / kind
        save(assemble(zoo, n_layers=1, d_model=32, seed=0, init="normal", init_std=0.5), folders[kind] / "model.safetensors")
    return folders


def test_decoder_continues_the_prompt(capsys, runs):
    code, out, err = run(capsys, "generate", runs["decoder"], "--prompt", "The return", "--max-new", 12,
                         "--temperature", 0, "--device", "cpu")
    assert code == 0, err
    model = load(runs["decoder"])
    tok = ByteTokenizer.for_model(model.spec.model)
    prompt = torch.tensor([[tok.eos_id] + tok.encode("The return")])
    expected = generate(model, prompt, 12, temperature=0)[0, prompt.shape[1]:].tolist()
    assert out == "The return" + tok.decode(expected) + "\n"


def test_decoder_sampling_is_seeded(capsys, runs):
    path = runs["decoder"] / "model.safetensors"  # a file works as well as the folder
    first = run(capsys, "generate", path, "--prompt", "x", "--max-new", 20, "--top-p", 0.9, "--top-k", 50, "--seed", 3)
    second = run(capsys, "generate", path, "--prompt", "x", "--max-new", 20, "--top-p", 0.9, "--top-k", 50, "--seed", 3)
    assert first[0] == 0 and first == second


def test_encoder_decoder_beam_search(capsys, runs):
    code, out, err = run(capsys, "generate", runs["encoder_decoder"], "--src", "342", "--beam", 4, "--alpha", 0.6,
                         "--max-new", 10)
    assert code == 0, err
    model = load(runs["encoder_decoder"])
    tok = ByteTokenizer.for_model(model.spec.model)
    expected = generate_seq2seq(model, torch.tensor([tok.encode("342")]), 10, beam=4, length_penalty=0.6)
    assert out == tok.decode(expected[0].tolist()) + "\n"


@pytest.mark.parametrize("kind, flags, message", [
    ("encoder", ["--prompt", "x"], "an encoder-only model cannot generate (generation needs a decoder)"),
    ("encoder_decoder", ["--prompt", "x"], "--prompt: this is an encoder-decoder model; give the source text with --src"),
    ("encoder_decoder", [], "--src: an encoder-decoder model needs the source text"),
    ("decoder", ["--src", "x"], "--src: this is a decoder-only model; give the text to continue with --prompt"),
    ("decoder", ["--beam", 2], "--beam: beam search (2) is for encoder-decoder models"),
    ("decoder", ["--top-p", 1.5], "top_p must be in (0, 1]"),
    ("decoder", ["--device", "nonsense"], "--device: 'nonsense' is not a device"),
    ("decoder", ["--seed", 2**70], f"--seed {2**70}: out of range; give an integer from 0 to 2**64 - 1"),
    ("decoder", ["--temperature", "inf"], "temperature must be a finite number >= 0"),
    ("encoder_decoder", ["--src", ""], "--src: empty; give at least one character of source text"),
])
def test_wrong_model_or_flags_exit_2_with_one_line(capsys, runs, kind, flags, message):
    code, out, err = run(capsys, "generate", runs[kind], *flags)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_checkpoint(capsys, tmp_path):
    code, _, err = run(capsys, "generate", tmp_path, "--prompt", "x")
    assert code == 2 and "a folder without model.safetensors" in err
