"""Learning-rate schedules: cosine, linear and constant (each after a linear warmup) and the paper's noam;
and the Horizon, which stretches warmup and decay over a wall-time budget (``train.max_minutes``)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from stackform.specs.train import ScheduleSpec

# With a time budget, warmup ends by this share of the run's estimated steps at the latest
# (or by the spec's own share, warmup / steps, when that is larger): no run ends inside warmup.
BUDGET_WARMUP_SHARE = 0.1
RECENT_STEPS = 16  # the step time is the slower of the run's average and that of its last steps
MEASURED_STEPS = 4  # steps timed before ``ending`` says which limit ends the run


def decayed(schedule: ScheduleSpec, lr: float, progress: float) -> float:
    """The lr after warmup at ``progress`` (0 to 1) of the decay: cosine, linear or constant."""
    if schedule.type == "constant":
        return lr
    progress = min(1.0, max(0.0, progress))
    floor = schedule.min_lr_ratio
    if schedule.type == "cosine":
        return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    return lr * (1 - (1 - floor) * progress)


def lr_at(schedule: ScheduleSpec, lr: float, step: int, total: int, d_model: int) -> float:
    """The learning rate of optimizer step ``step`` (1-based) of ``total`` (a run without a time budget).

    - warmup (all but noam): ``lr * step / warmup`` while ``step <= warmup``;
    - ``constant``: ``lr``;
    - ``cosine``: ``lr * (m + (1 - m) * (1 + cos(pi * p)) / 2)``, ``linear``: ``lr * (1 - (1 - m) * p)``,
      with ``m = min_lr_ratio`` and ``p = (step - warmup) / (total - warmup)``;
    - ``noam`` (Vaswani et al. 2017, eq. 3): ``lr * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)``.
    """
    step = max(step, 1)
    warmup = schedule.warmup
    if schedule.type == "noam":
        return lr * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
    if warmup and step <= warmup:
        return lr * step / warmup
    return decayed(schedule, lr, (step - warmup) / max(1, total - warmup))


@dataclass
class Horizon:
    """Where a run with a wall-time budget stands in its schedule, advanced once per step.

    The run's length is estimated as it goes: the steps left are the fewer of ``steps - step + 1``
    and ``(budget - now) / seconds per step`` (measured, evaluations included). Each step moves the
    warmup (and then the decay) on by what is left of it divided by the steps left for it, so a
    changing estimate bends the curve without a jump, the decay reaches its floor at the run's
    last step whichever limit ends it, and warmup ends by ``BUDGET_WARMUP_SHARE`` of the run.
    ``warm`` and ``progress`` (0 to 1) are saved with the training state: a resumed run, given a
    new budget, continues its curve from where it was (it is extended, never restarted).
    """

    schedule: ScheduleSpec
    lr: float
    steps: int
    budget_s: float | None
    d_model: int = 1  # noam's scale
    warm: float = 0.0
    progress: float = 0.0
    _seen: deque = field(default_factory=lambda: deque(maxlen=RECENT_STEPS + 1), repr=False)
    _anchor: tuple[int, float] | None = field(default=None, repr=False)
    _calls: int = field(default=0, repr=False)

    def state(self) -> dict[str, float]:
        return {"warm": self.warm, "progress": self.progress}

    def restore(self, state: dict[str, Any]) -> None:
        self.warm, self.progress = float(state.get("warm", 0.0)), float(state.get("progress", 0.0))

    def step_seconds(self) -> float | None:
        """Seconds per step as measured in this process (its first step, which warms up, left out)."""
        if self._anchor is None or len(self._seen) < 2:
            return None
        (s0, t0), (s1, t1) = self._anchor, self._seen[-1]
        (r0, u0) = self._seen[0]
        average = (t1 - t0) / max(s1 - s0, 1)
        recent = (t1 - u0) / max(s1 - r0, 1)
        return max(average, recent, 1e-9)

    def steps_left(self, step: int, now: float) -> float:
        """Steps still to run, this one included, as far as ``train.steps`` and the budget allow."""
        left = float(self.steps - step + 1)
        rate = self.step_seconds()
        if self.budget_s is None or rate is None:
            return max(1.0, left)
        return max(1.0, min(left, (self.budget_s - now) / rate))

    def warmup_steps(self, step: int, now: float) -> float:
        """The warmup's length in steps: the spec's, shortened when the budget shortens the run."""
        warmup = self.schedule.warmup
        total = step - 1 + self.steps_left(step, now)
        if total >= self.steps:
            return float(warmup)
        return min(warmup, max(warmup * total / self.steps, BUDGET_WARMUP_SHARE * total))

    def advance(self, step: int, now: float) -> float:
        """The lr of step ``step`` (1-based) starting at ``now`` seconds of the run; call once per step."""
        self._calls += 1
        if self._calls == 2:
            self._anchor = (step, now)  # the first step of this process (which warms up) is done: measure from here
        if self._anchor is not None:
            self._seen.append((step, now))
        if self.schedule.type == "noam":
            return lr_at(self.schedule, self.lr, step, self.steps, self.d_model)  # no horizon to stretch
        if self.warm < 1.0:
            left = self.warmup_steps(step, now) - (step - 1)
            self.warm = 1.0 if left <= 1 else self.warm + (1 - self.warm) / left
            return self.lr * self.warm
        self.progress += (1 - self.progress) / self.steps_left(step, now)
        return decayed(self.schedule, self.lr, self.progress)

    def ending(self, step: int, now: float) -> tuple[str, float] | None:
        """Which limit is expected to end the run (``steps`` or ``max_minutes``) and near which step;
        None until the step time is measured."""
        rate = self.step_seconds()
        if rate is None or self.budget_s is None or len(self._seen) <= min(MEASURED_STEPS, self.steps - 2):
            return None
        by_time = step - 1 + max(0.0, self.budget_s - now) / rate
        return ("max_minutes", by_time) if by_time < self.steps else ("steps", float(self.steps))
