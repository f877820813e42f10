"""Per-block parameter and FLOP accounting of an assembled model (works on the meta device)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from stackform.blocks import LMHead, MultiHeadAttention, TokenEmbedding

from .models import StackformModel


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


def block_rows(model: StackformModel, context: int | None = None) -> list[Row]:
    """One row per registered block (and embeddings, head), in model order.

    FLOPs are forward multiply-adds x 2 per token at ``context`` tokens (default max_len);
    attention adds 4 * context * heads * head_dim for its scores and weighted sum.
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
                            2 * module.weight.shape[0] * module.weight.shape[1]))
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


def training_memory(model: StackformModel, batch: int, seq: int, bytes_per_param: int = 4) -> dict[str, int]:
    """A rough training-memory estimate in bytes: weights, gradients, AdamW moments, activations."""
    spec = model.spec.model
    n = model.num_parameters()
    layers = sum(len(s.layers) for s in (getattr(model, a, None) for a in ("stack", "encoder", "decoder")) if s)
    act = batch * seq * spec.d_model * layers * 34 * 2 // 4 + batch * seq * spec.vocab_size * bytes_per_param
    return {"weights": n * bytes_per_param, "gradients": n * bytes_per_param, "adamw": 2 * n * 4, "activations": act}
