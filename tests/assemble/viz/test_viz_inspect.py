"""inspect: parameter counts equal the model's, the memory estimate is close to what autograd
keeps, huge specs work on the meta device, the command's flags and errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stackform.assemble import assemble
from stackform.assemble.cli import main
from stackform.assemble.inspect import activation_elements, block_rows, training_memory
from stackform.specs import zoo_names
from tiny import tiny_spec
from variants import variants


def _fits(spec: dict) -> dict:
    if spec["model"]["kind"] == "encoder_decoder":
        spec = {**spec, "train": {"task": "seq2seq", "data": {"type": "builtin", "name": "numbers"}}}
    return spec


@pytest.mark.parametrize("name", zoo_names())
def test_rows_add_up_to_the_models_parameters_zoo(name):
    model = assemble(name, device="meta")
    assert sum(r.params for r in block_rows(model)) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("spec", [s for _, s in variants()], ids=[i for i, _ in variants()])
def test_rows_add_up_to_the_models_parameters_variants(spec):
    model = assemble(_fits(spec), device="meta")
    rows = block_rows(model)
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    assert all(r.params >= 0 and r.flops >= 0 for r in rows)


def _saved_bytes(model, ids: torch.Tensor) -> int:
    """Bytes autograd keeps for backward (storages counted once, parameters not) plus the logits."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(ids, ids) if model.spec.model.kind == "encoder_decoder" else model(ids)
        F.cross_entropy(logits.flatten(0, 1), ids.flatten())
    return sum(seen.values()) + logits.numel() * logits.element_size()


@pytest.mark.parametrize("kind, fields", [
    ("decoder", {}),
    ("decoder", {"ffn": "swiglu", "positional": "rope", "norm": "rmsnorm"}),
    ("encoder", {"residual": "post"}),
    ("encoder_decoder", {"residual": "post", "ffn": {"type": "mlp", "activation": "relu"}}),
], ids=["gpt", "llama-ish", "bert-ish", "transformer"])
def test_activation_estimate_is_close_to_what_autograd_keeps(kind, fields):
    model = assemble(tiny_spec(kind, d_model=32, n_heads=4, max_len=32, **fields), seed=0)
    ids = torch.randint(0, 256, (2, 32))
    measured = _saved_bytes(model, ids)
    estimate = training_memory(model, 2, 32)["activations"]
    assert 0.8 < estimate / measured < 1.25, (estimate, measured)


def test_memory_parts():
    model = assemble(tiny_spec("decoder"), device="meta")
    n = sum(p.numel() for p in model.parameters())
    one = training_memory(model, 1, 8)
    assert (one["weights"], one["gradients"], one["adamw"]) == (4 * n, 4 * n, 8 * n)
    assert training_memory(model, 4, 8)["activations"] == 4 * one["activations"]
    assert training_memory(model, 1, 8, "bf16")["activations"] < one["activations"]
    per_token, masks = activation_elements(model)
    assert one["activations"] == 8 * (4 * per_token + masks + 8 * 259)


def test_huge_spec_on_the_meta_device(capsys):
    overrides = ["model.d_model=8192", "model.n_heads=64", "model.n_layers=80", "model.positional=learned",
                 "model.ffn={type: mlp, hidden: 28672}", "model.max_len=4096"]  # pinned: gpt-tiny may change
    assert main(["inspect", "gpt-tiny", *overrides, "--batch", "1", "--seq", "4096"]) == 0
    out = capsys.readouterr().out
    d, hidden = 8192, 28672
    expected = 80 * (4 * d * d + 2 * d * hidden + 9 * d + hidden) + 259 * d + 4096 * d + 2 * d  # 59.1B
    assert f"parameters: {expected:,}" in out and "total                          1.02 TiB" in out


def test_inspect_command_memory_and_diagram(capsys, tmp_path):
    code = main(["inspect", "gpt-tiny", "model.n_layers=2", "--batch", "4", "--seq", "64",
                 "--diagram", str(tmp_path / "arch.svg")])
    out = capsys.readouterr().out
    assert code == 0 and "training memory (AdamW, fp32 activations) at batch 4 x seq 64" in out
    for part in ("weights (fp32)", "gradients (fp32)", "AdamW moments", "activations", "total"):
        assert part in out
    assert (tmp_path / "arch.svg").stat().st_size > 10_000


@pytest.mark.parametrize("argv, message", [
    (["--seq", "999"], "--seq 999: longer than max_len"),
    (["--batch", "0"], "--batch 0: must be a positive number"),
    (["--diagram", "arch.gif"], "--diagram arch.gif: unknown picture format '.gif'"),
    (["--diagram", "/no/such/folder/a.svg"], "the folder /no/such/folder does not exist"),
])
def test_inspect_errors_are_one_line(capsys, argv, message):
    assert main(["inspect", "gpt-tiny", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
