"""Run folders: their metrics (``metrics.jsonl``), their spec, and how the specs of runs differ."""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open

from stackform.assemble.checkpoint import spec_of
from stackform.assemble.errors import CheckpointError
from stackform.assemble.train import metrics_file
from stackform.registry import unimported
from stackform.specs import Spec, read_source, validate_source

from .errors import VizError

IGNORED = {"train.out_dir"}  # differs between runs without saying anything about them


@dataclass
class Run:
    """One training run: its folder, spec and metric records (one dict per metrics.jsonl line)."""

    path: Path
    spec: Spec
    records: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.path.resolve().name

    def curve(self, split: str, x: str = "step") -> tuple[list[float], list[float]]:
        """(x values, losses) of the ``split`` records ("train" | "val") that have both; a loss
        that is null (metrics.jsonl writes no finite value as null; older runs wrote NaN) is NaN."""
        rows = [r for r in self.records if r.get("split") == split and r.get(x) is not None and "loss" in r]
        return [float(r[x]) for r in rows], [math.nan if r["loss"] is None else float(r["loss"]) for r in rows]


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The checked records of a metrics.jsonl; a half-written last line (a run still writing) is skipped."""
    try:
        return metrics_file.read_metrics(path)
    except metrics_file.MetricsError as exc:
        raise VizError(str(exc)) from None


def checkpoint_spec(path: str | os.PathLike) -> Spec:
    """The spec in a checkpoint's metadata, reading only the file's header (not the weights)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # safetensors raises several types for a damaged header
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable safetensors file ({reason})") from None
    return spec_of(metadata, str(path))


def run_spec(folder: Path) -> Spec:
    """The spec of a run: from model.safetensors' metadata, else spec.yaml."""
    if (folder / "model.safetensors").is_file():
        return checkpoint_spec(folder / "model.safetensors")
    if (folder / "spec.yaml").is_file():
        return _stored_spec(folder / "spec.yaml")
    raise VizError(f"{folder}: a run folder needs model.safetensors or spec.yaml (neither is there)")


def _stored_spec(path: Path) -> Spec:
    """A run's spec.yaml, read as a viewer reads it: the ``plugins:`` it lists are never imported
    (a downloaded run folder does not decide what code runs); unless the user imported them
    (``--plugin``), the spec is refused in one line."""
    source = read_source(path)
    missing = unimported(source.data.get("plugins")) if isinstance(source.data, dict) else []
    if missing:
        raise VizError(f"{path}: the run's spec needs plugins: {', '.join(missing)}; reading a run folder never "
                       f"imports code, so import them yourself if you trust them (--plugin {missing[0]}) "
                       "and try again")
    return validate_source(source)


def read_run(path: str | os.PathLike) -> Run:
    """A run folder with metrics.jsonl and a spec."""
    folder = Path(path)
    try:
        mode = os.stat(folder).st_mode
    except FileNotFoundError:
        raise VizError(f"{path}: no such run folder") from None
    except OSError as exc:  # a name too long, a file where a folder of the path should be
        raise VizError(f"{str(path)[:200]}: not a run folder ({exc.strerror or exc})") from None
    if not stat.S_ISDIR(mode):
        raise VizError(f"{path}: not a folder (give the run folder that holds metrics.jsonl)")
    metrics = folder / "metrics.jsonl"
    if not os.path.lexists(metrics):
        raise VizError(f"{path}: no metrics.jsonl in this folder (not a training run?)")
    return Run(folder, run_spec(folder), read_metrics(metrics))


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as dotted keys: {"model.layers.0.repeat": 3, ...}."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in items:
        out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def spec_differences(specs: list[Spec]) -> list[dict[str, Any]]:
    """For each spec, the dotted keys of ``model`` and ``train`` whose values differ between the specs.

    Parameters of a block whose ``type`` differs are left out where a run lacks them (the
    type already says it); ``train.out_dir`` is ignored.
    """
    flat = []
    for spec in specs:
        data = spec.model_dump(mode="json")
        flat.append(flatten({"model": data["model"], "train": data["train"]}))
    missing = object()
    keys = sorted(set().union(*flat)) if flat else []
    differ = [k for k in keys if k not in IGNORED and len({json.dumps(f.get(k, missing), default=str)
                                                           for f in flat}) > 1]
    types = {k.rsplit(".", 1)[0] for k in differ if k.endswith(".type")}
    shown = [k for k in differ if k.endswith(".type") or k.rsplit(".", 1)[0] not in types
             or all(k in f for f in flat)]
    return [{k: f[k] for k in shown if k in f} for f in flat]


def format_differences(diff: dict[str, Any]) -> str:
    """``n_layers=2, train.optimizer.lr=0.003``: model keys without their ``model.`` prefix."""
    return ", ".join(f"{k.removeprefix('model.')}={v}" for k, v in diff.items())
