"""The benchmark compares like with like: the hand-written reference computes the spec's math, and
`stackform bench` runs and prints both (tiny sizes; nothing here is timed)."""

from __future__ import annotations

import pytest
import torch

from stackform.assemble import assemble
from stackform.assemble.bench.harness import Contestant
from stackform.assemble.bench.reference import ReferenceGPT
from stackform.assemble.bench.report import paired_ratio
from stackform.assemble.cli import main
from stackform.assemble.cli.bench import PRESETS
from stackform.assemble.train.loss import loss_function
from stackform.specs import load_spec

RENAME = {"embed.weight": "wte.weight", "stack.positional.weight": "wpe.weight", "head.weight": "head.weight",
          "stack.final_norm.weight": "ln_f.weight", "stack.final_norm.bias": "ln_f.bias"}
LAYER = {"self_attn.qkv": "qkv", "self_attn.out": "proj", "self_res.norm": "ln1", "ffn.up": "fc",
         "ffn.down": "fc_out", "ffn_res.norm": "ln2"}


def _reference_names(name: str) -> str:
    if name in RENAME:
        return RENAME[name]
    _, _, i, rest = name.split(".", 3)  # stack.layers.I.<module>.<param>
    module, param = rest.rsplit(".", 1)
    return f"blocks.{i}.{LAYER[module]}.{param}"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_reference_computes_the_same_loss_as_stackform(preset):
    """Same weights in, same loss out (eval mode: no dropout), for every preset's spec (tiny dims)."""
    name, overrides, _, _ = PRESETS[preset]
    tiny = ["model.d_model=32", "model.n_heads=2", "model.n_layers=2", "model.max_len=16",
            "model.ffn.hidden=64"]
    spec = load_spec(name, overrides + tiny)
    model = assemble(spec, seed=0).eval()
    reference = ReferenceGPT(spec.model).eval()
    state = {_reference_names(k): v for k, v in model.state_dict().items()}
    reference.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in reference.parameters()) == model.num_parameters()
    ids = torch.randint(0, spec.model.vocab_size, (2, 17))
    total, n = loss_function(model, model, spec, compile=False)({"input_ids": ids[:, :-1], "labels": ids[:, 1:]})
    with torch.no_grad():
        assert torch.allclose(total / n, reference(ids[:, :-1].contiguous(), ids[:, 1:].contiguous()), atol=1e-5)


def test_paired_ratio_is_the_median_of_per_repeat_ratios():
    ref = Contestant("hand-written", lambda: None, 1, 1, samples=[100.0, 50.0, 100.0])
    other = Contestant("stackform", lambda: None, 1, 1, samples=[110.0, 60.0, 90.0])
    assert paired_ratio(other, ref) == pytest.approx(1.1)  # ratios 1.1, 1.2, 0.9


def test_bench_command_prints_both_models(capsys):
    assert main(["bench", "--preset", "tiny", "--steps", "1", "--repeats", "2", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("\nmodel ") + 1:].splitlines()
    assert "paired" in table[0]
    assert [line.split()[0] for line in table[1:]] == ["hand-written", "stackform"]
    assert table[1].split()[1] == table[2].split()[1]  # the same parameter count


@pytest.mark.parametrize("argv, message", [
    (["--compile", "bogus"], "argument --compile: invalid choice: 'bogus'"),
    (["--seq", "99"], "--seq 99 is longer than the spec's max_len 16"),
    (["--device", "cuda:99"], "--device: 'cuda:99'"),  # no CUDA here, or not 100 devices there
    (["bert-tiny"], "bench: bert-tiny: the reference GPT is written for pre-norm decoders"),
    (["model.d_model=7"], "model.n_heads: d_model (7) must be divisible by n_heads (4)"),  # an override, not a spec
])
def test_bench_refuses_bad_flags_in_one_line(argv, message, capsys):
    try:
        code = main(["bench", "--preset", "tiny", *argv])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("script, argv, message", [
    ("rnn", ["--seconds", "-1"], "argument --seconds: -1: must be a positive number"),
    ("rnn", ["nosuchspec"], "error: nosuchspec: no spec file or zoo spec by this name"),
    ("generation", ["--rounds", "0"], "argument --rounds: 0: must be at least 1"),
    ("memory", ["--batch", "x"], "argument --batch: 'x' is not an integer"),
    ("memory", ["gpt-tiny", "model.d_model=7"], "model.n_heads: d_model (7) must be divisible by n_heads (4)"),
    ("memory", ["--device", "nope"], "error: --device: 'nope' is not a device"),
])
def test_bench_scripts_refuse_bad_input_in_one_line(script, argv, message, capsys):
    import importlib

    from stackform.assemble.bench import run_script

    module = importlib.import_module(f"stackform.assemble.bench.{script}")
    try:
        code = run_script(module.main, argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert message in err.strip().splitlines()[-1]  # one error line (argparse prints its usage first)
