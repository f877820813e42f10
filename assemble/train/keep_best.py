"""``train.keep_best``: ``best.safetensors`` holds the weights of the lowest validation loss so far.

It is a whole checkpoint (weights, spec, ``step`` and ``val_loss`` in its metadata), written
atomically with the machinery of every checkpoint (temporary file, fsync, rename): a kill while it
is written leaves the previous best file as it was. A resumed run reads ``val_loss`` back from the
file, so it replaces the best only with a better model; a new run in the folder (``--overwrite``)
starts from no best and removes the one the earlier run left.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..checkpoint import checkpoint_bytes, replace_with, write_temp
from ..errors import CheckpointError
from .commit import read_metadata

BEST_FILE = "best.safetensors"
LOSS_KEY = "val_loss"


def best_loss(path: Path) -> float | None:
    """The validation loss recorded in a best checkpoint, or None (no file, or no readable loss in it)."""
    if not path.is_file():
        return None
    try:
        text = read_metadata(path).get(LOSS_KEY, "")
        value = float(text) if len(text) < 40 else math.nan
    except (CheckpointError, ValueError):
        return None
    return value if math.isfinite(value) else None


class BestKeeper:
    """Offered every evaluation; writes best.safetensors when the loss is lower than any before."""

    def __init__(self, run: Any):
        """Made when training starts (``run.counters.step`` above 0: a resumed run)."""
        self.run, self.resumed = run, run.counters.step > 0
        self.path = Path(run.out_dir) / BEST_FILE
        self.enabled = bool(run.spec.train.keep_best)
        self.best: float | None = None
        self.started = self.warned = False

    def _start(self, ranks: Any) -> None:
        """Read the resumed best, or remove the best of the run this one replaces (--overwrite)."""
        self.started = True
        if self.resumed:
            self.best = best_loss(self.path) if self.enabled else None
        elif ranks is None or ranks.is_main:
            self.path.unlink(missing_ok=True)

    def offer(self, step: int, metrics: dict[str, float], ranks: Any = None) -> bool:
        """Save the model as the best if ``metrics['loss']`` is lower than the best so far; whether it did.
        ``ranks``: a multi-process run's (only rank 0 writes; nothing is kept when the weights are sharded)."""
        if not self.started:
            self._start(ranks)
        loss = metrics.get("loss")
        if not self.enabled or ranks is not None and not ranks.is_main:
            return False
        if ranks is not None and ranks.sharded:
            if not self.warned:
                self.run.console.line("train.keep_best: not kept under parallel: fsdp (the weights are sharded)")
                self.warned = True
            return False
        if loss is None or not math.isfinite(loss) or (self.best is not None and loss >= self.best):
            return False
        data = checkpoint_bytes(self.run.model, self.path, metadata={"step": str(step), LOSS_KEY: repr(float(loss))})
        replace_with(write_temp(self.path, data), self.path)
        self.best = float(loss)
        return True
