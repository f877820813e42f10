"""The block protocol: a block that follows the documented contract without subclassing anything is
inspected, drawn and counted; describe() / cost() / losses() reach inspect, the diagram and training."""

from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn

from stackform import registry
from stackform.assemble import assemble
from stackform.assemble.cli import main
from stackform.assemble.inspect import activation_elements, block_rows
from stackform.assemble.viz.architecture import architecture
from stackform.assemble.viz.diagram import draw_architecture
from stackform.blocks import protocol
from stackform.registry import BlockParams, Dims


class PlainAttention(nn.Module):
    """Attention written from the contract alone (no stackform base class): q, k, v projections, then ctx."""

    Params = BlockParams

    def __init__(self, dims: Dims, params: BlockParams, cross: bool = False):
        super().__init__()
        self.h, self.hd, self.cross = dims.n_heads, dims.head_dim, cross
        self.role, self.layer = dims.role, dims.layer
        inner = dims.n_heads * dims.head_dim
        self.wq, self.wk, self.wv = (nn.Linear(dims.d_model, inner) for _ in range(3))
        self.wo = nn.Linear(inner, dims.d_model)

    def forward(self, x, ctx, memory=None, cache=None, need_weights=False):
        b, t, _ = x.shape
        src = memory if self.cross else x
        q = self.wq(x).view(b, t, self.h, self.hd).transpose(1, 2)  # [b, h, t, hd]
        k = self.wk(src).view(b, src.shape[1], self.h, self.hd).transpose(1, 2)
        v = self.wv(src).view(b, src.shape[1], self.h, self.hd).transpose(1, 2)
        if not self.cross:
            q, k = ctx.rotate(q, k)
            if cache is not None:
                k, v = cache.append(k, v)
        y, w = ctx.attend(q, k, v, None, None, 0.0, need_weights)
        return self.wo(y.transpose(1, 2).reshape(b, t, -1)), w


class CountedFFN(nn.Module):
    """An FFN that speaks the protocol: its own label, cost and an auxiliary loss."""

    Params = BlockParams

    def __init__(self, dims: Dims, params: BlockParams):
        super().__init__()
        self.up, self.down = nn.Linear(dims.d_model, 8), nn.Linear(8, dims.d_model)
        self._aux: torch.Tensor | None = None

    def forward(self, x):
        h = self.up(x)
        self._aux = 0.5 * h.pow(2).mean()
        return self.down(torch.relu(h))

    def describe(self) -> str:
        return "counted 8 wide"

    def cost(self, ctx: protocol.CostContext) -> protocol.Cost:
        return protocol.Cost(flops=1000.0, activations=7.0, params=sum(p.numel() for p in self.parameters()),
                             active_params=5)

    def losses(self) -> dict[str, torch.Tensor]:
        return {"aux": self._aux} if self._aux is not None else {}


@pytest.fixture
def plugins():
    registry.register("attention", "plain")(PlainAttention)
    registry.register("ffn", "counted")(CountedFFN)
    yield
    registry.unregister("attention", "plain")
    registry.unregister("ffn", "counted")


def _spec(kind: str, **model) -> dict:
    spec = {"name": "p", "model": {"kind": kind, "vocab_size": 32, "max_len": 16, "d_model": 16, "n_heads": 2,
                                   "n_layers": 2, "attention": "plain", **model}}
    if kind == "encoder_decoder":
        spec["train"] = {"task": "seq2seq", "data": {"type": "builtin", "name": "numbers"}}
    return spec


@pytest.mark.parametrize("kind", ["decoder", "encoder", "encoder_decoder"])
@pytest.mark.parametrize("layer", ["sequential", "parallel"])
def test_attention_without_base_class_inspects_and_draws(plugins, kind, layer, tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(_spec(kind, layer=layer, positional="rope")))
    assert main(["inspect", str(path), "--diagram", str(tmp_path / "a.svg")]) == 0
    out = capsys.readouterr().out
    assert "attention plain" in out and (tmp_path / "a.svg").stat().st_size > 10_000
    model = assemble(_spec(kind, layer=layer), device="meta")
    rows = block_rows(model, context=16)
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    attn = [r for r in rows if r.type == "attention plain"]
    assert attn and all(r.flops == 2 * 4 * 16 * 16 for r in attn)  # the default: 2 FLOPs per linear weight
    groups = [g for view in architecture(model) for g in view.groups]
    roles = [role for g in groups for role, _ in g.sublayers]
    assert "self-attention" in roles and "feed-forward" in roles
    assert ("cross-attention" in roles) == (kind == "encoder_decoder")
    assert all(g.parallel == (layer == "parallel") for g in groups)


def test_blocks_learn_their_layer_and_role(plugins):
    model = assemble(_spec("encoder_decoder", n_layers=3), device="meta")
    self_attn = [layer.self_attn for layer in model.decoder.layers]
    assert [(a.role, a.layer) for a in self_attn] == [("self_attention", i) for i in range(3)]
    assert {layer.cross_attn.role for layer in model.decoder.layers} == {"cross_attention"}
    assert model.encoder.layers[1].ffn.block_dims.side == "encoder" and model.decoder.layers[1].ffn.block_dims.layer == 1


def test_describe_and_cost_reach_inspect_and_the_diagram(plugins):
    model = assemble(_spec("decoder", attention="mha", ffn="counted"), device="meta")
    rows = [r for r in block_rows(model) if r.type.startswith("ffn")]
    assert [(r.type, r.flops, r.active_params) for r in rows] == [("ffn counted 8 wide", 1000, 5)] * 2
    plain = assemble(_spec("decoder", attention="mha", ffn={"type": "mlp", "hidden": 8, "activation": "relu"}),
                     device="meta")
    extra = activation_elements(model)[0] - activation_elements(plain)[0]
    assert extra == 2 * (7 - (16 + 8))  # the declared 7 instead of the MLP's two linear inputs
    labels = {label for view in architecture(model) for g in view.groups for _, label in g.sublayers}
    assert "counted 8 wide" in labels


def test_default_describe_shows_non_default_params():
    model = assemble(_spec("decoder", attention={"type": "mha", "window": 4, "bias": False}), device="meta")
    assert protocol.describe(model.stack.layers[0].self_attn) == "mha bias=False window=4"
    assert protocol.losses(model.stack.layers[0].self_attn) == {}


def test_model_losses_sum_by_name(plugins):
    model = assemble(_spec("decoder", attention="mha", ffn="counted"), seed=0)
    model(torch.randint(0, 32, (2, 5)))
    found = protocol.model_losses(model)
    ffns = [layer.ffn for layer in model.stack.layers]
    assert list(found) == ["aux"] and torch.equal(found["aux"], ffns[0]._aux + ffns[1]._aux)


def test_inspect_prints_active_parameters_of_sparse_blocks(plugins, tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(_spec("decoder", attention="mha", ffn="counted")))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    model = assemble(_spec("decoder", attention="mha", ffn="counted"), device="meta")
    total = sum(p.numel() for p in model.parameters())
    ffn = sum(p.numel() for p in model.stack.layers[0].ffn.parameters())
    assert f"active parameters per token: {total - 2 * (ffn - 5):,}" in out


def test_inspect_counts_declared_embedding_tables(capsys):
    """'without embeddings' leaves out the blocks that declare no_weight_decay (token and position tables)."""
    assert main(["inspect", "gpt-tiny", "model.positional=learned", "model.n_layers=1"]) == 0
    out = capsys.readouterr().out
    model = assemble("gpt-tiny", positional="learned", n_layers=1, device="meta")
    m = model.spec.model
    total = sum(p.numel() for p in model.parameters())
    assert f"without embeddings {total - m.vocab_size * m.d_model - m.max_len * m.d_model:,}" in out
