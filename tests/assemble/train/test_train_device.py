"""The GPU choices, checked without a GPU: device auto, bf16 autocast, fused AdamW."""

from __future__ import annotations

import pytest
import torch

from stackform.assemble import TrainingError, assemble
from stackform.assemble.train.device import resolve_device, resolve_precision
from stackform.assemble.train.optim import build_optimizer
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


def test_adamw_is_fused_on_cuda_and_foreach_elsewhere():
    model = assemble("gpt-tiny", d_model=32, n_heads=2, n_layers=1, device="cpu")
    cpu = build_optimizer(model, OptimizerSpec(), torch.device("cpu"))
    assert cpu.defaults["foreach"] is True and not cpu.defaults["fused"]
    cuda = build_optimizer(model, OptimizerSpec(), torch.device("cuda"))  # built only: no step without a GPU
    assert cuda.defaults["fused"] is True and not cuda.defaults["foreach"]
