"""Hugging Face model folders without transformers: ``config.json`` with json, weights with
safetensors (one ``model.safetensors`` or shards listed in ``model.safetensors.index.json``).
"""

from __future__ import annotations

import json
import os
import stat
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


MAX_JSON = 64 << 20  # bytes of a config.json or an index read at most (real ones are kilobytes)


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` (a ``what``): one InteropError line for a file that is not
    one (too large, not UTF-8, not JSON, nested too deeply, an integer of 5000 digits, an array)."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise InteropError(f"{path}: {'a folder' if stat.S_ISDIR(mode) else 'not a regular file'}; "
                               f"expected the {what}")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_JSON + 1)
    except OSError as exc:
        raise InteropError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > MAX_JSON:
        raise InteropError(f"{path}: larger than {MAX_JSON >> 20} MiB; not a {what}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InteropError(f"{path}: not UTF-8 (byte offset {exc.start}: {exc.reason})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InteropError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise InteropError(f"{path}: not a {what} (JSON nested too deeply)") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise InteropError(f"{path}: not a {what} ({str(exc).split(':')[0]})") from None
    if not isinstance(value, dict):
        raise InteropError(f"{path}: expected a JSON object, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a Hugging Face model folder."""
    folder = Path(folder)
    try:
        mode = os.stat(folder).st_mode
        what = None if stat.S_ISDIR(mode) else "a file"
    except FileNotFoundError:
        what = "no such folder"
    except OSError as exc:  # a name too long, a file where a folder of the path should be
        folder, what = Path(str(folder)[:200]), exc.strerror or str(exc)
    if what:
        raise InteropError(f"{folder}: {what}; expected a Hugging Face model folder (config.json + model.safetensors)")
    path = folder / CONFIG
    if not os.path.lexists(path):
        raise InteropError(f"{folder}: not a Hugging Face model folder (no {CONFIG})")
    return read_json_object(path, CONFIG)


def _shard_name(index: Path, tensor: Any, name: Any) -> str:
    """A shard named in ``weight_map``: a plain file name in the folder (no path, nothing above it)."""
    if not isinstance(tensor, str) or not isinstance(name, str):
        raise InteropError(f"{index}: weight_map: expected tensor names mapped to shard file names, "
                           f"got {_json_type(tensor if not isinstance(tensor, str) else name)}")
    if (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name
            or len(name.encode("utf-8", "surrogateescape")) > 255):
        raise InteropError(f"{index}: weight_map: {name[:60]!r} is not a file name in this folder")
    return name


def _shards(folder: Path) -> list[Path]:
    index = folder / INDEX
    if os.path.lexists(index):
        weight_map = read_json_object(index, "safetensors index").get("weight_map")
        if not isinstance(weight_map, dict):
            raise InteropError(f"{index}: not a safetensors index (needs a 'weight_map' object of tensor "
                               f"name -> shard file, got {_json_type(weight_map)})")
        names = sorted({_shard_name(index, tensor, name) for tensor, name in weight_map.items()})
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise InteropError(f"{index}: lists shards that are not in the folder: {', '.join(missing[:5])}"
                               + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""))
        if not names:
            raise InteropError(f"{index}: the weight_map lists no tensors")
        return [folder / n for n in names]
    if os.path.lexists(folder / WEIGHTS):
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


def _out_folder(folder: Path) -> bool:
    """Whether ``folder`` exists (a file there is an error); one line for a path the system refuses
    (a name too long, a file where a folder of the path should be)."""
    try:
        mode = os.stat(folder).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise InteropError(f"{str(folder)[:200]}: not a usable folder ({exc.strerror or exc}); give --out a folder") \
            from None
    if not stat.S_ISDIR(mode):
        raise InteropError(f"{folder}: exists and is not a folder; give --out a folder")
    return True


def check_import_out(folder: Path, overwrite: bool) -> None:
    """Refuse an ``import-hf --out`` that is a file, or a folder whose spec or checkpoint would be replaced."""
    if not _out_folder(folder):
        return
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
    _out_folder(folder)
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
