"""Cross-entropy fused with the output projection, chunk by chunk.

``linear_cross_entropy(hidden, weight, bias, targets)`` returns the summed loss of
``F.cross_entropy(hidden @ weight.T + bias, targets)`` without ever holding the
logits of the whole batch: each chunk's logits are made, turned into the loss and
into the gradients of ``hidden``, ``weight`` and ``bias`` right away (in the
forward pass), and thrown away. Backward then only scales the stored gradients.
FLOPs are those of the plain head (three matmuls); memory holds one chunk of logits.
On CUDA the vocabulary is padded to a multiple of 128 inside the matmul (padded
logits are masked out), which keeps the tensor cores on their fast shapes, and the
per-chunk math is compiled into fused kernels. Small problems on the CPU take plain
autograd (``F.linear`` + ``F.cross_entropy``), which is faster there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100
CHUNK_ELEMENTS = 1 << 26  # logits per chunk on the CPU (64M: 256 MB in fp32)
CUDA_CHUNK_ELEMENTS = 1 << 28  # on CUDA (256M: 512 MB in bf16): GPT-2's head matmuls 0.3 ms faster per step
SMALL_ELEMENTS = 1 << 24  # on CPU, up to this many logits take the plain path (64 MB in fp32)


def _chunk_rows(vocab: int, rows: int, cuda: bool = False) -> int:
    """Rows per chunk: about CHUNK_ELEMENTS logits, chunks of equal size (fewer compiled shapes)."""
    chunks = max(1, -(-rows * vocab // (CUDA_CHUNK_ELEMENTS if cuda else CHUNK_ELEMENTS)))
    return -(-rows // chunks)


def _chunk_loss_grad(logits: torch.Tensor, y: torch.Tensor, vocab: int, eps: float, want_grad: bool, acc: torch.dtype):
    """Loss sum of one chunk and d(loss sum)/d(logits) [c, V'] in the logits' dtype (one fused pass on CUDA)."""
    x = logits.to(acc)  # [c, V']
    col = torch.arange(x.shape[1], device=x.device)
    if x.shape[1] != vocab:
        x = x.masked_fill(col >= vocab, float("-inf"))  # padded columns never win
    valid = y != IGNORE  # [c]
    safe = torch.where(valid, y, 0)
    lse = torch.logsumexp(x, dim=-1)  # [c]
    loss = lse - x.gather(1, safe[:, None]).squeeze(1)
    if eps:
        loss = (1 - eps) * loss + eps * (lse - x[:, :vocab].mean(dim=-1))
    total = (loss * valid).sum()
    if not want_grad:
        return total, None
    grad = torch.exp(x - lse[:, None]) - (1 - eps) * (col[None, :] == safe[:, None]).to(acc)
    if eps:
        grad = grad - (eps / vocab) * (col < vocab).to(acc)
    return total, (grad * valid[:, None]).to(logits.dtype)


_compiled: dict[str, object] = {}


def _chunk_fn(device_type: str):
    """The per-chunk math, compiled into fused kernels on CUDA; plain eager elsewhere."""
    if device_type != "cuda":
        return _chunk_loss_grad
    if "cuda" not in _compiled:
        _compiled["cuda"] = torch.compile(_chunk_loss_grad, dynamic=False)
    return _compiled["cuda"]


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, label_smoothing, pad_to, chunk_rows):  # noqa: D102
        device_type = hidden.device.type
        dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden.dtype
        ctx.dtypes = (hidden.dtype, weight.dtype, bias.dtype if bias is not None else None)
        with torch.autocast(device_type, enabled=False):
            return _LinearCrossEntropy._run(ctx, hidden, weight, bias, targets, label_smoothing, pad_to, dtype,
                                            chunk_rows)

    @staticmethod
    def _run(ctx, hidden, weight, bias, targets, eps, pad_to, dtype, chunk_rows):
        vocab = weight.shape[0]
        w = weight.to(dtype)  # one cast for all chunks
        if pad_to and vocab % pad_to:
            w = F.pad(w, (0, 0, 0, pad_to - vocab % pad_to))  # [V', d]
        b = F.pad(bias.to(dtype), (0, w.shape[0] - vocab)) if bias is not None else None  # [V']
        needs = ctx.needs_input_grad
        acc = torch.promote_types(dtype, torch.float32)  # softmax precision: fp32 at least
        grad_hidden = torch.empty_like(hidden) if needs[0] else None
        grad_weight = torch.zeros(w.shape, dtype=acc, device=w.device) if needs[1] else None
        grad_bias = torch.zeros(vocab, dtype=acc, device=w.device) if bias is not None and needs[2] else None
        want_grad = grad_hidden is not None or grad_weight is not None or grad_bias is not None
        chunk_fn = _chunk_fn(hidden.device.type)
        total = torch.zeros((), dtype=acc, device=w.device)
        rows = hidden.shape[0]
        step = chunk_rows or _chunk_rows(w.shape[0], rows, w.is_cuda)
        for start in range(0, rows, step):
            h, y = hidden[start:start + step].to(dtype), targets[start:start + step]
            logits = h @ w.t() if b is None else torch.addmm(b, h, w.t())  # [c, V']
            loss, grad = chunk_fn(logits, y, vocab, float(eps), want_grad, acc)
            total += loss
            if not want_grad:
                continue
            if grad_bias is not None:
                grad_bias += grad[:, :vocab].sum(0, dtype=acc)
            if grad_hidden is not None:
                grad_hidden[start:start + step] = grad @ w
            if grad_weight is not None:
                grad_weight += (grad.t() @ h).to(acc)
        if grad_weight is not None:
            grad_weight = grad_weight[:vocab]
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        return total

    @staticmethod
    def backward(ctx, grad_total):  # noqa: D102
        grads = []
        for grad, dtype in zip(ctx.saved_tensors, ctx.dtypes):
            grads.append(None if grad is None else (grad * grad_total.to(grad.dtype)).to(dtype))
        return (*grads, None, None, None, None)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    label_smoothing: float = 0.0,
    chunk_rows: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed loss, number of counted targets) for hidden [..., d], weight [V, d], targets [...].

    Targets equal to IGNORE (-100) are skipped. The count is a tensor (no host sync).
    ``chunk_rows`` fixes the rows per chunk (default: about CHUNK_ELEMENTS logits per chunk).
    """
    h = hidden.reshape(-1, hidden.shape[-1])  # [n, d]
    y = targets.reshape(-1)  # [n]
    if chunk_rows is None and not h.is_cuda and h.shape[0] * weight.shape[0] <= SMALL_ELEMENTS:
        # small on CPU: plain autograd is fastest and its logits are cheap to hold
        logits = F.linear(h, weight, bias)  # [n, V]
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        total = F.cross_entropy(logits, y, ignore_index=IGNORE, reduction="sum", label_smoothing=float(label_smoothing))
        return total, (y != IGNORE).sum()
    pad_to = 128 if h.is_cuda else 0
    total = _LinearCrossEntropy.apply(h, weight, bias, y, float(label_smoothing), pad_to, chunk_rows)
    return total, (y != IGNORE).sum()
