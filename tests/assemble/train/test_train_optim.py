"""AdamW groups: weight decay on matrices only, never on norms, biases or embeddings; tied weights once."""

from __future__ import annotations

import torch

from stackform.assemble import assemble
from stackform.assemble.train.optim import build_optimizer, param_groups
from stackform.specs.train import OptimizerSpec


def test_groups_split_decay_and_no_decay():
    model = assemble("gpt-tiny", d_model=32, n_heads=2, n_layers=2, positional="learned", device="cpu")
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in no_decay["params"]}
    assert not decayed & kept
    assert decayed | kept == set(names.values())  # every parameter once (the tied head included once)
    assert "embed.weight" in kept and "stack.positional.weight" in kept
    assert all(n.endswith("bias") or "norm" in n or n in ("embed.weight", "stack.positional.weight") for n in kept)
    assert all(p.ndim == 2 for p in decay["params"]) and any("qkv.weight" in n for n in decayed)


def test_optimizer_uses_spec_values():
    model = assemble("gpt-tiny", d_model=32, n_heads=2, n_layers=1, device="cpu")
    opt = build_optimizer(model, OptimizerSpec(lr=3e-3, betas=(0.8, 0.9), eps=1e-7, weight_decay=0.05),
                          torch.device("cpu"))
    assert isinstance(opt, torch.optim.AdamW)
    group = opt.param_groups[0]
    assert group["lr"] == 3e-3 and tuple(group["betas"]) == (0.8, 0.9) and group["eps"] == 1e-7
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
