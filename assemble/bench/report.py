"""The benchmark table: tokens/s (median and spread), ratio to the reference, MFU and memory."""

from __future__ import annotations

import statistics

from stackform.specs import Spec

from .harness import Contestant

PEAK_BF16 = {"H100": 989e12, "H200": 989e12}  # dense bf16 FLOP/s, SXM


def _positional_params(spec: Spec) -> int:
    """The parameters of the positional block (a learned table: max_len x d_model), built on meta."""
    import torch

    from ..build import build_block, dims_of

    m = spec.model
    with torch.device("meta"):
        block = build_block(m.positional, dims_of(m, m.sides[-1], causal=False))
    return sum(p.numel() for p in block.parameters())


def flops_per_token(spec: Spec, params: int, seq: int) -> float:
    """6N + 12 * L * d * T with N the non-embedding parameters (Kaplan et al.; the convention of
    the issue's figures: 392K tokens/s = 24.8% MFU for GPT-2 small on an H200); the positional
    block's parameters count as embeddings."""
    m = spec.model
    embeddings = m.vocab_size * m.d_model * (1 if m.tie_embeddings else 2)
    embeddings += _positional_params(spec)
    return 6 * (params - embeddings) + 12 * (m.n_layers or 0) * m.d_model * seq


def peak_flops(device_name: str) -> float | None:
    return next((value for key, value in PEAK_BF16.items() if key in device_name), None)


def paired_ratio(c: Contestant, ref: Contestant) -> float:
    """Median over repeats of (c's tokens/s / the reference's in the same repeat): the two ran
    back to back, so slow drifts of the machine's load cancel out."""
    return statistics.median(a / b for a, b in zip(c.samples, ref.samples))


def table(contestants: list[Contestant], spec: Spec, seq: int, device_name: str | None) -> str:
    ref = next((c for c in contestants if c.name == "hand-written"), contestants[0])
    peak = peak_flops(device_name or "")
    w = max(16, *(len(c.name) + 2 for c in contestants))  # the name column fits the longest name
    head = f"{'model':<{w}}{'params':>13}{'tokens/s':>13}{'spread':>9}{'vs hand-written':>17}{'paired':>9}"
    if device_name:
        head += f"{'MFU':>8}{'step mem':>11}"
    lines = [head]
    for c in contestants:
        line = (f"{c.name:<{w}}{c.params:>13,}{c.median:>13,.0f}{c.spread:>8.1%} {c.median / ref.median:>15.3f}x"
                f"{paired_ratio(c, ref):>8.3f}x")
        if device_name:
            mfu = c.median * flops_per_token(spec, c.params, seq) / peak if peak else float("nan")
            line += f"{mfu:>8.1%}{c.peak_memory / 2**30:>9.2f}GB"
        lines.append(line)
    return "\n".join(lines)
