"""``train.log``: where the metrics of a run go besides the console and ``metrics.jsonl``.

``jsonl`` (``metrics.jsonl``, always written: ``--resume`` and ``compare`` read it), ``csv``
(``metrics.csv``), ``tensorboard`` (``tensorboard/``, extra ``tensorboard``) and ``wandb``
(``wandb/``, extra ``wandb``; ``WANDB_MODE=offline`` logs without a network, ``wandb sync`` later).
Every logger gets the records of metrics.jsonl as they are written, with the same keys (``loss``,
``lr``, ``grad_norm``, ``tokens_per_s``, ``memory_mib``, ...; TensorBoard and W&B name them
``train/loss``, ``val/loss``), and the resolved spec as the run's config. On ``--resume`` each
continues from the resumed step: metrics.csv is rewritten from metrics.jsonl, TensorBoard purges
the later steps, W&B resumes the same run id.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from stackform.specs import Spec

from ..checkpoint import atomic_write
from .device import TrainingError

LOGGER_FILES = ("metrics.csv", "tensorboard", "wandb")  # what the optional loggers write in a run folder
FIRST_COLUMNS = ("step", "split", "loss", "ppl", "bpb", "exact_match", "unigram_loss", "lr", "grad_norm",
                 "tokens_per_s", "memory_mib", "elapsed_s")


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory of this process so far: CUDA memory allocated on a GPU, else the peak resident set."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
    except (ImportError, OSError):
        return float("nan")


def _missing(name: str) -> TrainingError:
    return TrainingError(f"train.log: {name} needs the {name} package: pip install 'stackform[{name}]'")


class CsvLogger:
    """``metrics.csv``: one row per record; a record with a new key rewrites the file with a wider header."""

    def __init__(self, path: Path, records: list[dict[str, Any]]):
        self.path, self.rows, self.columns = path, list(records), list(FIRST_COLUMNS)
        self._rewrite()

    def _rewrite(self) -> None:
        for row in self.rows:
            self.columns += [key for key in row if key not in self.columns]
        out = io.StringIO()
        writer = csv.DictWriter(out, self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.path, out.getvalue().encode())

    def write(self, record: dict[str, Any]) -> None:
        self.rows.append(record)
        if any(key not in self.columns for key in record):
            return self._rewrite()
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, self.columns, lineterminator="\n").writerow(record)

    def close(self) -> None:
        pass


def _scalars(record: dict[str, Any]) -> dict[str, float]:
    split = record.get("split", "train")
    return {f"{split}/{key}": float(value) for key, value in record.items()
            if key not in ("step", "split") and isinstance(value, (int, float)) and not isinstance(value, bool)}


class TensorBoardLogger:
    """``tensorboard/``: scalars ``train/loss``, ``val/bpb``, ... by step; the spec as text ``config``."""

    def __init__(self, folder: Path, spec_yaml: str, resume_step: int | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("tensorboard") from None
        # a resumed run drops what was logged after its checkpoint; a new one what an overwritten run left
        self.writer = SummaryWriter(str(folder), purge_step=(resume_step or 0) + (resume_step is not None))
        self.writer.add_text("config", "    " + spec_yaml.replace("\n", "\n    "), 0)

    def write(self, record: dict[str, Any]) -> None:
        for key, value in _scalars(record).items():
            self.writer.add_scalar(key, value, record["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """``wandb/``: a W&B run (project ``$WANDB_PROJECT`` or ``stackform``) whose config is the spec;
    its id is kept in ``wandb/stackform-run-id`` so that ``--resume`` continues the same W&B run."""

    def __init__(self, folder: Path, spec: Spec, resume_step: int | None):
        try:
            import wandb
        except ImportError:
            raise _missing("wandb") from None
        folder.mkdir(exist_ok=True)
        id_file = folder / "stackform-run-id"
        run_id = id_file.read_text().strip() if resume_step is not None and id_file.is_file() else None
        if not run_id:
            run_id = secrets.token_hex(4)
            atomic_write(id_file, run_id.encode())
        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "stackform"), name=spec.name, id=run_id,
                              dir=str(folder.parent), config=spec.model_dump(mode="json"), resume="allow",
                              settings=wandb.Settings(console="off", silent=True))

    def write(self, record: dict[str, Any]) -> None:
        self.run.log(_scalars(record), step=record["step"])

    def close(self) -> None:
        self.run.finish()


class Loggers:
    """``metrics.jsonl`` (a MetricsLog) and the loggers of ``train.log``, behind the MetricsLog interface.
    A logger that fails mid-run is reported once and dropped: the run and metrics.jsonl go on."""

    def __init__(self, log: Any, extra: list[Any]):
        self.log, self.extra = log, extra

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.log.records

    @property
    def failed(self) -> bool:
        return self.log.failed

    def write(self, record: dict[str, Any]) -> None:
        self.log.write(record)
        record = self.log.records[-1]  # as written: non-finite numbers are None
        for logger in list(self.extra):
            try:
                logger.write(record)
            except Exception as exc:  # noqa: BLE001: a logger's failure must not end the run
                self._drop(logger, exc)

    def _drop(self, logger: Any, exc: Exception) -> None:
        self.extra.remove(logger)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"warning: train.log: {type(logger).__name__} stopped ({reason[:160]}); metrics.jsonl goes on",
              file=sys.stderr)

    def close(self) -> None:
        try:
            self.log.close()
        finally:
            for logger in self.extra:
                try:
                    logger.close()
                except Exception as exc:  # noqa: BLE001
                    self._drop(logger, exc)


def open_loggers(spec: Spec, out: Path, log: Any, resume_step: int | None) -> Any:
    """``log`` (metrics.jsonl) joined by the loggers ``spec.train.log`` names; ``log`` itself if none."""
    names = [name for name in dict.fromkeys(spec.train.log) if name != "jsonl"]
    if not names:
        return log
    spec_yaml = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    extra: list[Any] = []
    try:
        for name in names:
            if name == "csv":
                extra.append(CsvLogger(out / "metrics.csv", log.records))
            elif name == "tensorboard":
                extra.append(TensorBoardLogger(out / "tensorboard", spec_yaml, resume_step))
            elif name == "wandb":
                extra.append(WandbLogger(out / "wandb", spec, resume_step))
    except BaseException:
        for logger in extra:
            logger.close()
        log.close()
        raise
    return Loggers(log, extra)

