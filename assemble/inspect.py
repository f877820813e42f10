"""Per-block parameter and FLOP accounting of an assembled model (works on the meta device)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from stackform.blocks import Stack, protocol
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
    active_params: int = -1  # parameters one token uses (a mixture of experts: fewer); default all
    embedding: bool = False  # a table of embeddings (token, position): declared ``no_weight_decay``

    def __post_init__(self) -> None:
        if self.active_params < 0:
            self.active_params = self.params


def _own_params(module: nn.Module, seen: set[int]) -> int:
    total = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def num_parameters(model: StackformModel, weight: Weight = _one) -> int:
    """Parameters counted once (tied weights once), each module ``weight(path)`` times."""
    return sum(p.numel() * weight(name) for name, p in model.named_parameters())


def blocks_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, block) for every block the protocol counts, in model order: registered blocks and modules
    with ``describe``/``cost``, descending into containers (layers, residuals) and plain modules."""
    out: list[tuple[str, nn.Module]] = []

    def walk(module: nn.Module, path: str) -> None:
        for name, child in module.named_children():
            where = f"{path}.{name}" if path else name
            if protocol.is_block(child) and not protocol.is_container(child):
                out.append((where, child))
            else:
                walk(child, where)

    walk(model, "")
    return out


def _contexts(model: StackformModel, context: int) -> dict[str, protocol.CostContext]:
    """The cost context of every stack's blocks, by path prefix (rope rotation is the stack's)."""
    spec = model.spec.model
    base = protocol.CostContext(seq_len=context, kv_len=context, d_model=spec.d_model, n_heads=spec.n_heads)
    return {f"{name}.": base.with_(rotates=bool(getattr(stack.positional, "rotates", False)))
            for name, stack in _stacks(model)} | {"": base}


def block_cost(path: str, module: nn.Module, contexts: dict[str, protocol.CostContext]) -> protocol.Cost:
    ctx = next(c for prefix, c in contexts.items() if path.startswith(prefix))
    dims = getattr(module, "block_dims", None)
    if dims is not None:
        ctx = ctx.with_(role=dims.role, layer=dims.layer, side=dims.side)
    return protocol.cost(module, ctx)


def block_rows(model: StackformModel, context: int | None = None) -> list[Row]:
    """One row per block (``blocks_of``), in model order: its kind and ``describe()``, its parameters
    (tied weights once) and ``cost()``'s forward FLOPs per token at ``context`` tokens (default max_len).
    On a sampled model (``size.sample_model``) a row of a layer stands for every layer it repeats.
    """
    context = context or model.spec.model.max_len
    contexts = _contexts(model, context)
    seen: set[int] = set()
    rows: list[Row] = []
    for path, module in blocks_of(model):
        kind = getattr(module, "block_kind", None)
        label = protocol.describe(module)
        cost = block_cost(path, module, contexts)
        params = _own_params(module, seen)
        active = params - (cost.params - cost.active_params) if params else 0
        rows.append(Row(path, f"{kind} {label}" if kind else label, params, int(cost.flops), max(active, 0),
                        bool(getattr(module, "no_weight_decay", False))))
    rest = sum(p.numel() for p in model.parameters() if id(p) not in seen)
    if rest:
        rows.append(Row("(other)", "", rest, 0))
    return rows


PRECISION_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def _stacks(model: StackformModel) -> list[tuple[str, Stack]]:
    return [(name, module) for name, module in model.named_modules() if isinstance(module, Stack)]


def activation_elements(model: StackformModel, weight: Weight = _one) -> tuple[int, int]:
    """(activation elements saved for backward per token, dropout-mask bytes per token).

    Each block says what it keeps (``cost().activations``: a Linear its input, a LayerNorm its input,
    an RMSNorm also the normalized value, an attention its q, k, v, output and one softmax statistic
    per head (the fused SDPA kernels), rotated q and k under rope, an FFN its pre-activation (and
    gate)); a decoder with cross-attention keeps the encoder output once; an active dropout keeps a
    1-byte mask of d_model per token. Each block counts ``weight(path)`` times (the layers a sampled
    model's layer stands for).
    """
    d = model.spec.model.d_model
    contexts = _contexts(model, model.spec.model.max_len)
    elements = sum(weight(path) * block_cost(path, module, contexts).activations for path, module in blocks_of(model))
    masks = sum(weight(path) * d for path, module in model.named_modules()
                if isinstance(module, nn.Dropout) and module.p > 0)
    for _, stack in _stacks(model):
        roles = {sub.role for layer in stack.layers for sub in _sublayers(layer)}
        if "cross_attention" in roles:
            elements += d
    return int(elements), masks


def _sublayers(layer: nn.Module) -> list:
    own = getattr(layer, "sublayers", None)
    return list(own()) if callable(own) else []


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
