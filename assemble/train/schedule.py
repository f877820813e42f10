"""Learning-rate schedules: cosine, linear and constant (each after a linear warmup) and the paper's noam."""

from __future__ import annotations

import math

from stackform.specs.train import ScheduleSpec


def lr_at(schedule: ScheduleSpec, lr: float, step: int, total: int, d_model: int,
          time_fraction: float | None = None) -> float:
    """The learning rate of optimizer step ``step`` (1-based) of ``total``.

    - warmup (all but noam): ``lr * step / warmup`` while ``step <= warmup``;
    - ``constant``: ``lr``;
    - ``cosine``: ``lr * (m + (1 - m) * (1 + cos(pi * p)) / 2)``, ``linear``: ``lr * (1 - (1 - m) * p)``,
      with ``m = min_lr_ratio`` and ``p = (step - warmup) / (total - warmup)`` (or ``time_fraction``,
      the spent part of a wall-time budget, when that is further along);
    - ``noam`` (Vaswani et al. 2017, eq. 3): ``lr * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)``.
    """
    step = max(step, 1)
    warmup = schedule.warmup
    if schedule.type == "noam":
        return lr * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
    if warmup and step <= warmup:
        return lr * step / warmup
    if schedule.type == "constant":
        return lr
    progress = (step - warmup) / max(1, total - warmup)
    if time_fraction is not None:
        progress = max(progress, time_fraction)
    progress = min(1.0, progress)
    floor = schedule.min_lr_ratio
    if schedule.type == "cosine":
        return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    return lr * (1 - (1 - floor) * progress)
