"""The training loop on several processes: the same steps as one process, each rank on its slice.

Every rank draws the same global batch (``train.batch_size``) from the shared data generator and
keeps rows ``rank * b/N .. (rank + 1) * b/N``. Its summed loss is scaled by ``N / targets of the
step`` (the global batch, all its micro-batches), so after DDP's (or FSDP's) gradient averaging the
gradient is that of the mean over the step's targets, even when ranks and micro-batches count
different numbers of targets (MLM, seq2seq).
Once per step the ranks agree on the clock and on a stop request, so they all stop, evaluate
and save at the same step. Only rank 0 prints, writes metrics and saves.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from .commit import save_checkpoint
from .consolidate import Weights, full_model_state, full_optimizer_state, rng_states
from .device import TrainingError
from .distributed import Ranks
from .loop import Run, Trainer


class SilentLog:
    """The metrics log of ranks above 0: records nothing, writes nothing."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class ParallelTrainer(Trainer):
    """A Trainer whose steps, evaluations and checkpoints span all ranks of ``ranks``."""

    _stop_local = False  # Ctrl-C on this rank (set by the signal handler at any moment)
    _stop_agreed = False  # some rank asked to stop, as of the last sync: what the loop acts on

    def __init__(self, run: Run, ranks: Ranks):
        super().__init__(run)
        self.ranks = ranks
        self.agreed = self.elapsed_before  # the clock every rank uses this step (see sync)
        self.consolidated: dict[str, torch.Tensor] | None = None  # rank 0, fsdp: the last saved weights

    @property
    def stop_requested(self) -> bool:
        """What the loop acts on: the agreed request (Ctrl-C sets the local one, which the next sync shares)."""
        return self._stop_agreed

    @stop_requested.setter
    def stop_requested(self, value: bool) -> None:
        self._stop_local = value

    def elapsed(self) -> float:
        """Seconds of training as of the last agreement (the same on every rank: lr and budget follow it)."""
        return self.agreed

    def sync(self) -> None:
        """Agree on the clock (the slowest rank's) and on a stop request (any rank's Ctrl-C)."""
        local = super().elapsed()
        flags = torch.tensor([local, float(self._stop_local)], dtype=torch.float64)
        agreed = self.ranks.all_reduce(flags, op="max").cpu()
        self.agreed, self._stop_agreed = float(agreed[0]), bool(agreed[1])

    def shard(self, batch: dict[str, torch.Tensor], targets: int) -> tuple[dict[str, torch.Tensor], float | None]:
        """This rank's rows of the global batch, and the factor that turns its summed loss into its share
        (``targets``: of the whole step, every micro-batch of the global batch)."""
        labels = batch["labels"]
        rows = labels.shape[0] // self.ranks.world
        start = self.ranks.rank * rows
        part = {key: value[start:start + rows] for key, value in batch.items()}  # [b/N, ...] each
        return part, self.ranks.world / max(targets, 1)

    def accumulating(self, last: bool):
        """Gradients are reduced across ranks on the last micro-batch of a step only."""
        if self.ranks.mode == "fsdp":
            self.run.model.set_requires_gradient_sync(last)
        if self.ranks.mode == "ddp" and not last:
            return self.ranks.ddp.no_sync()
        return contextlib.nullcontext()

    def reduce(self, total: torch.Tensor, norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The global batch's loss (mean over ranks) and the full gradient norm, identical on every rank."""
        from torch.distributed.tensor import DTensor

        if isinstance(norm, DTensor):
            norm = norm.full_tensor()
        return self.ranks.all_reduce(total) / self.ranks.world, norm

    def evaluate(self, step: int) -> dict[str, float]:
        """Rank 0 evaluates (with FSDP every rank runs the same batches); all ranks get its metrics."""
        metrics = super().evaluate(step) if self.ranks.is_main or self.ranks.sharded else None
        metrics = self.ranks.broadcast_json(metrics)
        self.run.last_eval, self.run.last_eval_step = metrics, step
        return metrics

    def save(self, step: int) -> None:
        """Gather the full model and optimizer state; rank 0 writes the same commit one process would."""
        run, ranks = self.run, self.ranks
        self.sync()
        run.counters.elapsed_s = self.elapsed()
        if run.scaler is not None:
            run.counters.scaler = run.scaler.state_dict()
        weights = full_model_state(run.model, ranks)
        optimizer_state = full_optimizer_state(run.model, run.optimizer, ranks)
        rng = rng_states(ranks)
        error = None
        if ranks.is_main:
            try:
                save_checkpoint(run.out_dir, Weights(run.model.spec, weights), step, run.optimizer,
                                run.task.generator, run.counters, optimizer_state=optimizer_state, rng=rng)
            except Exception as exc:  # tell the other ranks, then raise here
                error = f"{type(exc).__name__}: {exc}"
                ranks.broadcast_json(error)
                raise
        error = ranks.broadcast_json(error)
        if error is not None:
            raise TrainingError(f"step {step}: rank 0 could not save the checkpoint ({error})")
        if ranks.sharded and ranks.is_main:
            self.consolidated = weights
        run.last_save_step = step

    def final_model(self, model: Any, device: torch.device, amp_dtype: torch.dtype | None) -> tuple[Any, Any, Any]:
        """(model, device, autocast dtype) to sample from on rank 0: with FSDP a plain copy of the
        last saved weights on the CPU (a sharded model can only run on all ranks at once)."""
        if not (self.ranks.sharded and self.ranks.is_main and self.consolidated is not None):
            return model, device, amp_dtype
        from ..build import build_model

        plain = build_model(model.spec)
        plain.load_state_dict(self.consolidated, strict=True)
        return plain, torch.device("cpu"), None
