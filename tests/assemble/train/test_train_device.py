"""The GPU choices, checked without a GPU: device auto, bf16 autocast, fused AdamW."""

from __future__ import annotations

import pytest
import torch

from stackform.assemble import TrainingError, assemble
from stackform.assemble.train.device import resolve_device, resolve_precision
from stackform.assemble.train.optim import build_optimizer, param_groups
from stackform.specs.train import OptimizerSpec


def test_auto_picks_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_bad_devices_are_clear_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TrainingError, match="train.device: 'cuda' asked for, but CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(TrainingError, match="train.device: 'gpu0' is not a device"):
        resolve_device("gpu0")


def test_precision_auto_is_bf16_on_cuda_and_fp32_on_cpu(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_precision("auto", cpu) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", cuda) is torch.float16  # older GPUs: fp16 with a gradient scaler
    assert resolve_precision("bf16", cpu) is torch.bfloat16 and resolve_precision("fp32", cuda) is None
    with pytest.raises(TrainingError, match="train.precision: fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)


def test_adamw_is_fused_on_cuda_and_cpu():
    model = assemble("gpt-tiny", d_model=32, n_heads=2, n_layers=1, device="cpu")
    cpu = build_optimizer(model, OptimizerSpec(), torch.device("cpu"))
    assert cpu.defaults["fused"] is True and not cpu.defaults["foreach"]
    cuda = build_optimizer(model, OptimizerSpec(), torch.device("cuda"))  # built only: no step without a GPU
    assert cuda.defaults["fused"] is True and not cuda.defaults["foreach"]


def test_fused_cpu_adamw_steps_like_the_reference_loop():
    """The fused kernel computes the same update as torch's per-tensor AdamW (to fp32 rounding)."""
    torch.manual_seed(0)
    model = assemble("gpt-tiny", d_model=32, n_heads=2, n_layers=1, device="cpu")
    twin = assemble("gpt-tiny", d_model=32, n_heads=2, n_layers=1, device="cpu")
    twin.load_state_dict(model.state_dict())
    fused = build_optimizer(model, OptimizerSpec(), torch.device("cpu"))
    loop = torch.optim.AdamW(param_groups(twin, OptimizerSpec().weight_decay), lr=OptimizerSpec().lr,
                             betas=tuple(OptimizerSpec().betas), eps=OptimizerSpec().eps, foreach=False)
    for _ in range(5):
        for m in (model, twin):
            for p in m.parameters():
                p.grad = torch.ones_like(p) * 0.01 + p.detach() * 0.1
        fused.step()
        loop.step()
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), name
