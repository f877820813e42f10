"""The training loop: accumulate, clip, step, log, evaluate, checkpoint; stop on time or Ctrl-C."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from stackform.specs import Spec

from ..data import IGNORE
from .aux_losses import AuxLosses
from .commit import MODEL_FILE, save_checkpoint
from .console import Console, MetricsLog, fmt_metrics
from .device import TrainingError, autocast
from .evaluate import evaluate
from .forward import input_tokens, to_device
from .keep_best import BestKeeper
from .loggers import peak_memory_mib
from .schedule import Horizon, lr_at
from .state import Counters


def target_count(labels: torch.Tensor, task: str) -> int:
    """The positions a batch's loss is averaged over: every one for a causal LM, else the labelled ones."""
    return labels.numel() if task == "causal_lm" else int((labels != IGNORE).sum())


@dataclass
class Run:
    """Everything one training run works with."""

    spec: Spec
    model: Any  # the StackformModel (saved, evaluated)
    loss: Callable  # batch -> (loss sum, targets): the model (or its wrapper) and the fused loss
    task: Any
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    device: torch.device
    amp_dtype: torch.dtype | None
    out_dir: Path
    log: MetricsLog
    console: Console
    counters: Counters
    unigram: torch.Tensor | None = None
    last_eval: dict[str, float] | None = None
    last_eval_step: int = -1
    last_save_step: int = -1


def budget_horizon(spec: Spec, counters: Counters) -> Horizon | None:
    """The schedule's Horizon for a run with a time budget (or resumed from one), else None."""
    train = spec.train
    if not train.max_minutes and not counters.schedule:
        return None
    budget = 60 * train.max_minutes if train.max_minutes else None
    horizon = Horizon(train.schedule, train.optimizer.lr, train.steps, budget, spec.model.d_model)
    horizon.restore(counters.schedule)
    return horizon


class Trainer:
    """Runs optimizer steps ``counters.step + 1 .. train.steps`` of a Run."""

    def __init__(self, run: Run):
        self.run = run
        self.train = run.spec.train
        self.params = [p for p in run.model.parameters() if p.requires_grad]
        self.stop_requested = False
        self.started = time.perf_counter()
        self.elapsed_before = run.counters.elapsed_s
        self.best = BestKeeper(run)
        self.horizon = budget_horizon(run.spec, run.counters)  # None: no time budget, lr_at by steps
        self.announced = False
        self.aux = AuxLosses(run.model)

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def _lr(self, step: int) -> float:
        if self.horizon is not None:
            return self.horizon.advance(step, self.elapsed())
        return lr_at(self.train.schedule, self.train.optimizer.lr, step, self.train.steps, self.run.spec.model.d_model)

    def train_step(self, step: int) -> tuple[torch.Tensor, torch.Tensor, int, float]:
        """One optimizer step over ``grad_accum`` micro-batches: (loss, grad norm, tokens, lr)."""
        run, train = self.run, self.train
        lr = self._lr(step)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        total = torch.zeros((), device=run.device)
        tokens = 0
        # the step's loss is the mean over the targets of all its micro-batches, as one batch of
        # batch_size * grad_accum would give (MLM and seq2seq micro-batches hold different numbers)
        batches = [run.task.train_batch(train.batch_size) for _ in range(train.grad_accum)]
        targets = sum(target_count(batch["labels"], train.task) for batch in batches)
        for i, batch in enumerate(batches):
            tokens += input_tokens(batch, run.spec.model.pad_id)
            batch, scale = self.shard(batch, targets)
            batch = to_device(batch, run.device)
            with self.accumulating(last=i == train.grad_accum - 1):
                with autocast(run.device, run.amp_dtype):
                    loss_sum, _ = run.loss(batch)
                loss = loss_sum / max(targets, 1) if scale is None else loss_sum * scale
                aux = self.aux.term(train.grad_accum)  # blocks' losses() (aux_losses.py)
                full = loss if aux is None else loss + aux
                (run.scaler.scale(full) if run.scaler else full).backward()
            total += loss.detach()
        if run.scaler:
            run.scaler.unscale_(run.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.params, train.grad_clip or math.inf, foreach=True)
        total, norm = self.reduce(total, norm)
        return total, norm, tokens, lr

    # hooks of the multi-process loop (parallel_loop.py); one process: no-ops

    def sync(self) -> None:
        """Before each step: agree with the other processes on the clock and on stopping."""

    def shard(self, batch: dict, targets: int) -> tuple[dict, float | None]:
        """(this process's rows, factor of its summed loss); None: divide by the step's ``targets``."""
        return batch, None

    def accumulating(self, last: bool):
        """Context of one micro-batch; gradients are synchronized across processes on the ``last``."""
        return contextlib.nullcontext()

    def reduce(self, total: torch.Tensor, norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's loss and gradient norm as every process should see them."""
        return total, norm

    def _finite(self, loss: torch.Tensor, norm: torch.Tensor) -> bool:
        ok = torch.isfinite(loss) if self.run.scaler else torch.isfinite(loss) & torch.isfinite(norm)
        return bool(ok)  # one host sync per step

    def _non_finite(self, step: int, loss: torch.Tensor) -> None:
        run = self.run
        if self.train.on_nan == "skip":
            run.optimizer.zero_grad(set_to_none=True)
            run.counters.skipped += 1
            if run.scaler:
                run.scaler.update()
            return
        kept = (f"the last good checkpoint (step {run.last_save_step}) is in {run.out_dir}"
                if run.last_save_step >= 0 else "no checkpoint was saved before it (set train.save_every)")
        raise TrainingError(
            f"step {step}: the loss is {float(loss)} (not finite); training stopped and {kept}; "
            "try a lower train.optimizer.lr, train.grad_clip, or train.on_nan: skip"
        )

    def _install_signals(self) -> dict:
        """Ctrl-C (SIGINT) and SIGTERM stop after the current step and save; a second one aborts."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            self.run.console.line(f"interrupted ({name}): stopping after this step and saving (again to abort)")

        return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def loop(self, stop_at_step: int | None = None) -> str:
        """Train until ``train.steps`` (or ``stop_at_step``, time budget, a signal); returns why it stopped."""
        run, train = self.run, self.train
        previous = self._install_signals()
        try:
            return self._loop(stop_at_step)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            run.counters.elapsed_s = self.elapsed()

    def _loop(self, stop_at_step: int | None) -> str:
        run, train = self.run, self.train
        budget = 60 * train.max_minutes if train.max_minutes else None
        window = {"loss": 0.0, "steps": 0, "tokens": 0, "t0": time.perf_counter(), "paused": 0.0}
        model_fields = {"lr": 0.0, "norm": 0.0}
        while run.counters.step < train.steps:
            self.sync()
            stop = ("interrupted" if self.stop_requested
                    else "stop_at_step" if stop_at_step is not None and run.counters.step >= stop_at_step
                    else "time budget" if budget is not None and self.elapsed() >= budget else None)
            if stop:
                if window["tokens"]:  # the steps since the last train line get one too
                    self._log_train(run.counters.step, window, model_fields)
                return stop
            step = run.counters.step + 1
            loss, norm, tokens, lr = self.train_step(step)
            if not self._finite(loss, norm):
                self._non_finite(step, loss)
            else:
                if run.scaler:
                    run.scaler.step(run.optimizer)
                    run.scaler.update()
                else:
                    run.optimizer.step()
                run.optimizer.zero_grad(set_to_none=True)
                window["loss"] += float(loss)
                window["steps"] += 1
                model_fields["norm"] = float(norm)
            run.counters.step = step
            run.counters.tokens += tokens
            window["tokens"] += tokens
            model_fields["lr"] = lr
            metrics = None
            if step % train.log_every == 0 or step == train.steps:
                metrics = self._log_train(step, window, model_fields)
            run.console.extra = self.aux.names
            run.console.step(step, metrics, self.elapsed())
            if self.horizon is not None and not self.announced:
                self._announce_ending(step)
            paused = time.perf_counter()
            if step % train.eval_every == 0 and step != train.steps:
                self.evaluate(step)
            if train.save_every and step % train.save_every == 0:
                self.save(step)
            window["paused"] += time.perf_counter() - paused
        return "done"

    def _announce_ending(self, step: int) -> None:
        """Once the step time is measured: which of train.steps and max_minutes will end the run."""
        from .summary import ending_line

        line = ending_line(self.horizon, step + 1, self.elapsed(), self.train)
        if line:
            self.run.console.line(line)
            self.announced = True

    def _log_train(self, step: int, window: dict, fields: dict) -> dict[str, float]:
        seconds = max(time.perf_counter() - window["t0"] - window["paused"], 1e-9)
        kept = window["steps"]  # steps of the window not skipped for a non-finite loss (on_nan: skip)
        record = {
            "step": step, "split": "train", "loss": window["loss"] / kept if kept else math.nan, "lr": fields["lr"],
            "tokens_per_s": window["tokens"] / seconds, "elapsed_s": round(self.elapsed(), 3),
            "grad_norm": fields["norm"] if kept else math.nan, "memory_mib": peak_memory_mib(self.run.device),
        }
        if self.run.counters.skipped:
            record["skipped"] = self.run.counters.skipped
        record.update(self.aux.fields(kept))
        self.run.log.write(record)
        window.update(loss=0.0, steps=0, tokens=0, t0=time.perf_counter(), paused=0.0)
        return record

    def evaluate(self, step: int) -> dict[str, float]:
        run = self.run
        metrics = evaluate(run.model, run.task, run.spec, run.device, run.amp_dtype, run.unigram)
        run.log.write({"step": step, "split": "val", **metrics, "elapsed_s": round(self.elapsed(), 3)})
        run.console.line(f"step {step}  val {fmt_metrics(metrics)}")
        run.last_eval, run.last_eval_step = metrics, step
        self.best.offer(step, metrics, getattr(self, "ranks", None))  # train.keep_best
        return metrics

    def save(self, step: int) -> None:
        """model.safetensors (weights + spec + step) and train_state.safetensors, as one commit (commit.py)."""
        run = self.run
        run.counters.elapsed_s = self.elapsed()
        if self.horizon is not None:
            run.counters.schedule = self.horizon.state()
        if run.scaler is not None:
            run.counters.scaler = run.scaler.state_dict()
        save_checkpoint(run.out_dir, run.model, step, run.optimizer, run.task.generator, run.counters)
        run.last_save_step = step
