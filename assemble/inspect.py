"""Per-block parameter and FLOP accounting of an assembled model (works on the meta device)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F
from torch import nn

from stackform.blocks import LMHead, MultiHeadAttention, Stack, TokenEmbedding
from stackform.registry import StackformError

from .models import StackformModel


class InspectError(StackformError, ValueError):
    """Bad input to ``stackform inspect`` (a flag out of range)."""


Weight = Callable[[str], int]  # how many layers of the real model a module path stands for (size.SampledModel)


def _one(_: str) -> int:
    return 1


@dataclass
class Row:
    path: str
    type: str
    params: int
    flops: int  # forward FLOPs per token


def _own_params(module: nn.Module, seen: set[int]) -> int:
    total = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def _matmul_flops(module: nn.Module) -> int:
    return sum(2 * m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


def num_parameters(model: StackformModel, weight: Weight = _one) -> int:
    """Parameters counted once (tied weights once), each module ``weight(path)`` times."""
    return sum(p.numel() * weight(name) for name, p in model.named_parameters())


def block_rows(model: StackformModel, context: int | None = None) -> list[Row]:
    """One row per registered block (and embeddings, head), in model order.

    FLOPs are forward multiply-adds x 2 per token at ``context`` tokens (default max_len);
    attention adds 4 * context * heads * head_dim for its scores and weighted sum.
    On a sampled model (``size.sample_model``) a row of a layer stands for every layer it repeats.
    """
    spec = model.spec.model
    context = context or spec.max_len
    seen: set[int] = set()
    rows: list[Row] = []
    for path, module in model.named_modules():
        name = getattr(module, "block_name", None)
        kind = getattr(module, "block_kind", None)
        if isinstance(module, TokenEmbedding):
            rows.append(Row(path, "embedding", _own_params(module, seen), 0))
        elif isinstance(module, LMHead):
            params = _own_params(module, seen)
            rows.append(Row(path, "lm_head (tied)" if module.tied else "lm_head", params,
                            2 * module.weight.shape[0] * module.weight.shape[1] + _matmul_flops(module)))
        elif name is not None and kind != "residual":
            flops = _matmul_flops(module)
            if isinstance(module, MultiHeadAttention):
                window = min(module.window or context, context)
                flops += 4 * window * module.n_heads * module.head_dim
            rows.append(Row(path, f"{kind} {name}", _own_params(module, seen), flops))
    rest = sum(p.numel() for p in model.parameters() if id(p) not in seen)
    if rest:
        rows.append(Row("(other)", "", rest, 0))
    return rows


PRECISION_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def _norm_elements(module: nn.Module, d_model: int) -> int:
    """LayerNorm keeps its input; RMSNorm (decomposed) its input and the normalized value."""
    if isinstance(module, nn.LayerNorm):
        return d_model
    if isinstance(module, nn.RMSNorm) or getattr(module, "block_kind", None) == "norm":
        return 2 * d_model  # a per-head q/k norm covers about d_model elements per token too
    return 0


def _ffn_extra(ffn: nn.Module) -> int:
    """Elements per token an FFN saves beyond its linears' inputs: the pre-activation (GELU, SiLU;
    ReLU keeps only its output, the next linear's input), and for gated FFNs the gate."""
    linears = [m for m in ffn.modules() if isinstance(m, nn.Linear)]
    if len(linears) < 2:
        return 0
    first, last = linears[0], linears[-1]
    if first.out_features == 2 * last.in_features:  # gated: [gate | up] and the activated gate
        return first.out_features + last.in_features
    return 0 if getattr(ffn, "act", None) is F.relu else first.out_features


def _stacks(model: StackformModel) -> list[tuple[str, Stack]]:
    return [(name, module) for name, module in model.named_modules() if isinstance(module, Stack)]


def activation_elements(model: StackformModel, weight: Weight = _one) -> tuple[int, int]:
    """(activation elements saved for backward per token, dropout-mask bytes per token).

    Counted per module: every Linear keeps its input (in_features), a LayerNorm its input
    (d_model), an RMSNorm also the normalized value (2 d_model), every attention its q, k, v,
    output and one softmax statistic per head (the fused SDPA kernels; the explicit path
    would add heads x keys), rotary stacks the rotated q and k, a decoder with
    cross-attention the encoder output once, every FFN its pre-activation (and gate);
    an active dropout keeps a 1-byte mask of d_model per token. Each module counts
    ``weight(path)`` times (the layers a sampled model's layer stands for).
    """
    d = model.spec.model.d_model
    elements, masks = 0, 0
    for path, module in model.named_modules():
        n = weight(path)
        if isinstance(module, nn.Linear):
            elements += n * module.in_features
        elif isinstance(module, MultiHeadAttention):
            elements += n * (2 * module.q_size + 2 * module.kv_size + module.n_heads)
            if module.cross:
                elements -= n * module.kv.in_features  # the encoder output: one tensor, counted once below
        elif getattr(module, "block_kind", None) == "ffn":
            elements += n * _ffn_extra(module)
        elif isinstance(module, nn.Dropout) and module.p > 0:
            masks += n * d
        else:
            elements += n * _norm_elements(module, d)
    for name, stack in _stacks(model):
        layers = list(stack.layers)
        if stack.positional.rotates:
            elements += sum(weight(f"{name}.layers.{i}") * (layer.self_attn.q_size + layer.self_attn.kv_size)
                            for i, layer in enumerate(layers))
        if any(layer.cross_attn is not None for layer in layers):
            elements += d
    return elements, masks


def training_memory(model: StackformModel, batch: int, seq: int, precision: str = "fp32",
                    weight: Weight = _one) -> dict[str, int]:
    """A training-memory estimate in bytes for AdamW at ``batch`` x ``seq`` tokens.

    weights = gradients = 4 N (fp32 master weights, also under bf16/fp16 autocast);
    adamw = 8 N (two fp32 moments); activations = batch * seq * (A * a + M + 8 V), with
    A, M from ``activation_elements``, a = 4 bytes (fp32) or 2 (bf16/fp16 autocast) and
    8 V for the fp32 logits and log-probabilities of the loss. Encoder-decoders count
    ``seq`` tokens on each side. Temporaries, allocator slack and the CUDA context are not counted.
    """
    n = num_parameters(model, weight)
    per_token, masks = activation_elements(model, weight)
    tokens = batch * seq
    act = tokens * (per_token * PRECISION_BYTES[precision] + masks + 8 * model.spec.model.vocab_size)
    return {"weights": 4 * n, "gradients": 4 * n, "adamw": 8 * n, "activations": act}
