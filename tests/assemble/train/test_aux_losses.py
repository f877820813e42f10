"""Blocks' auxiliary losses (``losses()``) reach the optimizer and are logged under their names."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from torch import nn

from stackform import registry
from stackform.assemble.cli import main
from stackform.registry import BlockParams, Dims


class PenalizedFFN(nn.Module):
    """An MLP with a parameter only its auxiliary loss touches: it moves only if that loss is trained."""

    Params = BlockParams

    def __init__(self, dims: Dims, params: BlockParams):
        super().__init__()
        self.up, self.down = nn.Linear(dims.d_model, 16), nn.Linear(16, dims.d_model)
        self.free = nn.Parameter(torch.ones(4))
        self._aux = None

    def forward(self, x):
        self._aux = 0.1 * (self.free ** 2).sum()
        return self.down(torch.relu(self.up(x)))

    def losses(self):
        return {"penalty": self._aux}


@pytest.fixture
def penalized():
    registry.register("ffn", "penalized")(PenalizedFFN)
    yield
    registry.unregister("ffn", "penalized")


def test_aux_loss_reaches_the_optimizer_and_the_logs(penalized, tmp_path, make_spec, capsys, monkeypatch):
    spec = make_spec(steps=4, log_every=2, eval_every=100, schedule={"type": "constant", "warmup": 0}, grad_accum=2)
    spec["model"].update(ffn="penalized", dropout=0.0)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(path), "train.out_dir=run"]) == 0
    err = capsys.readouterr().err
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in records if r["split"] == "train"]
    # two layers, each 0.1 * 4 * free^2 = 0.4 at the start: the sum over layers, per step
    assert train_lines[0]["penalty"] == pytest.approx(0.8, rel=0.05)
    assert train_lines[-1]["penalty"] < train_lines[0]["penalty"]  # trained: free shrinks
    assert "penalty 0.7" in err or "penalty 0.8" in err
    from stackform.assemble import load

    model = load(tmp_path / "run")
    assert all(not torch.equal(layer.ffn.free, torch.ones(4)) for layer in model.stack.layers)


def test_a_moe_spec_trains_and_logs_its_balance_and_z_losses(tmp_path, make_spec, capsys, monkeypatch):
    """The registered moe ffn's losses() (moe_balance, moe_z) flow into training: each is logged per train line."""
    spec = make_spec(steps=3, log_every=1, eval_every=100, schedule={"type": "constant", "warmup": 0})
    spec["model"].update(ffn={"type": "moe", "n_experts": 4, "top_k": 2, "expert": {"type": "mlp", "hidden": 8}},
                         dropout=0.0)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(path), "train.out_dir=run"]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in records if r["split"] == "train"]
    assert train_lines
    for line in train_lines:
        assert line["moe_balance"] > 0 and line["moe_z"] > 0
        assert all(torch.isfinite(torch.tensor(line[k])) for k in ("moe_balance", "moe_z", "loss"))
