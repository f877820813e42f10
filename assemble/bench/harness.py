"""Timing side by side: contestants take turns, repeat after repeat, in one process."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class Contestant:
    """A named training step: ``step()`` runs forward, backward and the optimizer once."""

    name: str
    step: Callable[[], None]
    params: int
    tokens_per_step: int
    samples: list[float] = field(default_factory=list)  # tokens/s of each repeat
    peak_memory: int = 0  # CUDA: peak bytes during its steps above what was allocated before them

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Half the range between the lowest and highest repeat, relative to the median."""
        return (max(self.samples) - min(self.samples)) / 2 / self.median if self.samples else 0.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_alternating(contestants: list[Contestant], device: torch.device, steps: int, repeats: int,
                    warmup: int, log: Callable[[str], None] = print) -> None:
    """Warm each contestant up, then time ``steps`` steps of each in turn, ``repeats`` times."""
    for c in contestants:
        log(f"  warming up {c.name} ({warmup} steps)")
        for _ in range(warmup):
            c.step()
        _sync(device)
    for r in range(repeats):
        order = contestants if r % 2 == 0 else list(reversed(contestants))  # no one always goes first
        for c in order:
            _sync(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                resident = torch.cuda.memory_allocated(device)  # every contestant's weights and AdamW state
            start = time.perf_counter()
            for _ in range(steps):
                c.step()
            _sync(device)
            c.samples.append(steps * c.tokens_per_step / (time.perf_counter() - start))
            if device.type == "cuda":
                c.peak_memory = max(c.peak_memory, torch.cuda.max_memory_allocated(device) - resident)
        log("  repeat %d/%d: %s" % (r + 1, repeats, ", ".join(f"{c.name} {c.samples[-1]:,.0f} tok/s"
                                                              for c in contestants)))
