"""Hugging Face model folders without transformers: ``config.json`` with json, weights with
safetensors (one ``model.safetensors`` or shards listed in ``model.safetensors.index.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from stackform.registry import StackformError

from ..checkpoint import atomic_write

WEIGHTS, INDEX, CONFIG = "model.safetensors", "model.safetensors.index.json", "config.json"


class InteropError(StackformError):
    """A Hugging Face folder or a model that cannot be converted (one line: the place and the problem)."""


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a Hugging Face model folder."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "a file" if folder.exists() else "no such folder"
        raise InteropError(f"{folder}: {what}; expected a Hugging Face model folder (config.json + model.safetensors)")
    path = folder / CONFIG
    if not path.is_file():
        raise InteropError(f"{folder}: not a Hugging Face model folder (no {CONFIG})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InteropError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise InteropError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def _shards(folder: Path) -> list[Path]:
    index = folder / INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise InteropError(f"{index}: not a safetensors index (needs a 'weight_map': {exc})") from None
        names = sorted(set(weight_map.values()))
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise InteropError(f"{index}: lists shards that are not in the folder: {', '.join(missing)}")
        return [folder / n for n in names]
    if (folder / WEIGHTS).is_file():
        return [folder / WEIGHTS]
    pickled = [n for n in ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
               if (folder / n).is_file()]
    if pickled:
        raise InteropError(f"{folder}: has {pickled[0]} but no {WEIGHTS}; stackform reads safetensors only "
                           "(convert it with transformers: save_pretrained(..., safe_serialization=True))")
    raise InteropError(f"{folder}: no {WEIGHTS} and no {INDEX}")


def read_tensors(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of the folder's safetensors file(s), by name."""
    tensors: dict[str, torch.Tensor] = {}
    for shard in _shards(Path(folder)):
        try:
            with safe_open(str(shard), framework="pt", device="cpu") as handle:
                for name in handle.keys():
                    tensors[name] = handle.get_tensor(name)
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InteropError(f"{shard}: not a readable safetensors file ({reason})") from None
    return tensors


RUN_FILES = ("spec.yaml", WEIGHTS, "train_state.safetensors")  # what a stackform run or import folder holds


def check_import_out(folder: Path, overwrite: bool) -> None:
    """Refuse an ``import-hf --out`` that is a file, or a folder whose spec or checkpoint would be replaced."""
    if folder.exists() and not folder.is_dir():
        raise InteropError(f"{folder}: exists and is not a folder; give --out a folder")
    taken = [name for name in RUN_FILES if (folder / name).exists()]
    if taken and not overwrite:
        raise InteropError(f"{folder} already holds {taken[0]}: pass --overwrite (overwrite=True) to replace it, "
                           "or pick another --out")


def _stackform_file(folder: Path) -> str | None:
    """The stackform file in ``folder`` an export would replace or leave beside HF weights, if any."""
    if (folder / "train_state.safetensors").exists():
        return "train_state.safetensors"
    try:
        with safe_open(str(folder / WEIGHTS), framework="pt", device="cpu") as handle:
            return WEIGHTS if "stackform.spec" in (handle.metadata() or {}) else None
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return None


def write_folder(folder: str | os.PathLike, config: dict[str, Any], tensors: dict[str, torch.Tensor],
                 generation: dict[str, Any] | None = None) -> Path:
    """Write ``config.json`` (+ ``generation_config.json``) and ``model.safetensors``, each atomically."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InteropError(f"{folder}: exists and is not a folder")
    if (folder / INDEX).exists():
        raise InteropError(f"{folder}: already holds a sharded model ({INDEX}); write to an empty folder")
    found = _stackform_file(folder)
    if found:
        raise InteropError(f"{folder}: holds a stackform checkpoint or run ({found}); export to another folder")
    contiguous = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    atomic_write(folder / WEIGHTS, safetensors_bytes(contiguous, metadata={"format": "pt"}))
    atomic_write(folder / CONFIG, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
    if generation:
        text = json.dumps(generation, indent=2, sort_keys=True) + "\n"
        atomic_write(folder / "generation_config.json", text.encode())
    return folder
