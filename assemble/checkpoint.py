"""Checkpoints: one safetensors file with the weights, the validated spec and the version.

Tied weights are stored once (the aliases are listed in the metadata). Writes are
atomic: a temporary file in the same folder, fsync, rename, fsync of the folder.
Nothing is pickled; loading never runs code.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from stackform import registry
from stackform.specs import Spec, SpecError
from stackform.specs.load import validate_source
from stackform.specs.plain import parse_json

from .errors import CheckpointError, WriteError
from .version import __version__

SPEC_KEY, VERSION_KEY, TIED_KEY = "stackform.spec", "stackform.version", "stackform.tied"
DIGEST_KEY = "stackform.sha256"  # of the spec, the tied map and the stored tensors (see ``digest``)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


TEMP_NAME_BYTES = 128  # of a file's name kept in its temporary file's name (NAME_MAX is 255 bytes)


def _temp_prefix(path: Path) -> str:
    """``.NAME.`` with NAME cut to TEMP_NAME_BYTES bytes: a temporary name fits any legal file name."""
    return "." + os.fsdecode(os.fsencode(path.name)[:TEMP_NAME_BYTES]) + "."


def remove_stale_temps(path: Path) -> None:
    """Delete ``.NAME.PID.*.tmp`` files that writers of ``path`` left when they were killed.

    Only files of processes that no longer run on this machine are removed.
    """
    prefix = _temp_prefix(path)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        parts = name[len(prefix):].split(".")  # [pid, random, "tmp"]
        if not (name.startswith(prefix) and len(parts) == 3 and parts[0].isdigit() and parts[2] == "tmp"):
            continue
        if not _pid_alive(int(parts[0])):
            try:
                os.unlink(path.parent / name)
            except OSError:
                pass


def _write_error(path: Path, exc: OSError) -> WriteError:
    """A failed write as one line (a full disk, no permission, a folder at ``path``); an OSError too."""
    error = WriteError(f"{path}: cannot write ({exc.strerror or type(exc).__name__}); "
                       "the file there before, if any, is unchanged")
    error.errno = exc.errno
    return error


def write_temp(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a new temporary file beside ``path`` and flush it to disk; ``path`` is untouched.

    The file is ``.NAME.PID.RANDOM.tmp`` (NAME cut short for a long name), created with mode
    0666 minus the umask, as ``open()`` would (``tempfile.mkstemp`` gives 0600). One left by a
    killed writer is removed by the next write of the same path. ``replace_with`` puts it in place.
    A failure is a ``WriteError`` line and leaves no temporary file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        prefix = f"{_temp_prefix(path)}{os.getpid()}."
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        while True:
            tmp = path.parent / f"{prefix}{secrets.token_hex(4)}.tmp"
            try:
                fd = _open_temp(tmp, flags)
                break
            except FileExistsError:
                continue
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from None
        raise
    return tmp


def _open_temp(tmp: Path, flags: int) -> int:
    """The descriptor of a new temporary file (a seam: tests point it at /dev/full for a full disk)."""
    return os.open(tmp, flags, 0o666)


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make the renames in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def replace_with(tmp: Path, path: str | os.PathLike) -> None:
    """Rename the temporary file ``tmp`` (from ``write_temp``) onto ``path``, durably; remove it on failure."""
    try:
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(Path(path), exc) from None
        raise
    fsync_folder(Path(path).parent)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half.

    A temporary file beside ``path`` (see ``write_temp``), fsync, rename, fsync of the folder.
    """
    replace_with(write_temp(path, data), path)


def unique_tensors(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Drop tensors that share storage with an earlier one: (tensors, {alias: stored name})."""
    seen: dict[tuple, str] = {}
    tensors: dict[str, torch.Tensor] = {}
    tied: dict[str, str] = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.dtype)
        if tensor.numel() and key in seen:
            tied[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = tensor.detach().contiguous().cpu()
    return tensors, tied


def checkpoint_bytes(model: torch.nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> bytes:
    """The bytes ``save`` writes: weights, spec, version, tied map, digest (and ``metadata``)."""
    spec: Spec = getattr(model, "spec", None)
    if spec is None:
        raise CheckpointError(f"{path}: only models built by stackform.assemble can be saved (no .spec)")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a folder; save to a file in it, e.g. {os.path.join(path, 'model.safetensors')}")
    tensors, tied = unique_tensors(model.state_dict())
    meta = {
        "format": "pt",
        SPEC_KEY: json.dumps(spec.model_dump(mode="json"), sort_keys=True),
        VERSION_KEY: __version__,
        TIED_KEY: json.dumps(tied, sort_keys=True),
        **(metadata or {}),
    }
    named = getattr(model, "tokenizer_meta", None)  # the run's tokenizer.json, by name and SHA-256
    if named:
        meta.setdefault("stackform.tokenizer", named)
    meta[DIGEST_KEY] = digest(tensors, meta[SPEC_KEY], meta[TIED_KEY])
    return safetensors_bytes(tensors, metadata=meta)


def save(model: torch.nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Save weights + spec + version to ``path`` (a .safetensors file), atomically."""
    atomic_write(path, checkpoint_bytes(model, path, metadata))
    return Path(path)


def digest(tensors: dict[str, torch.Tensor], *texts: str) -> str:
    """SHA-256 of ``texts`` (the stored spec and tied map) and the tensors' names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for text in texts:
        h.update(f"{len(text)}|{text}|".encode("utf-8", "surrogatepass"))
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; every failure is a CheckpointError."""
    path = str(path)
    if os.path.isdir(path):
        candidate = os.path.join(path, "model.safetensors")
        if not os.path.isfile(candidate):
            raise CheckpointError(f"{path}: a folder without model.safetensors")
        path = candidate
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); an interrupted copy?")
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable safetensors file ({reason})") from None
    return tensors, metadata


def spec_of(metadata: dict[str, str], path: str) -> Spec:
    """The validated spec stored in a checkpoint's metadata (its JSON bounded like a spec file)."""
    text = metadata.get(SPEC_KEY)
    if text is None:
        raise CheckpointError(f"{path}: no stackform spec in the metadata (not saved by stackform.save?)")
    where = f"{path} [spec]"
    try:
        src = parse_json(text, where)
    except SpecError as exc:
        message = str(exc).removeprefix(f"{where}: ")
        if message.startswith("not valid JSON"):
            raise CheckpointError(f"{path}: the spec in the metadata is {message}") from None
        raise CheckpointError(f"the spec stored in {exc}") from None
    _refuse_plugins(src.data, path)
    try:
        return validate_source(src)
    except SpecError as exc:
        raise CheckpointError(f"the spec stored in {exc}") from None


def _refuse_plugins(data: Any, path: str) -> None:
    """Loading never imports code: plugins a stored spec names must already be imported by the user."""
    plugins = data.get("plugins") if isinstance(data, dict) else None
    if not isinstance(plugins, list):
        return
    registry.ensure_loaded()  # installed entry-point plugins count as imported (they load on any lookup)
    missing = [p for p in plugins if not isinstance(p, str) or p not in sys.modules]
    if missing:
        names = ", ".join(map(str, missing))
        raise CheckpointError(
            f"{path}: the stored spec needs plugins: {names}; loading a checkpoint never imports code, "
            f"so import them yourself if you trust them (import {missing[0]}, or --plugin {missing[0]} on the "
            "command line) and load again"
        )


def _tied(metadata: dict[str, str], path: str) -> dict[str, str]:
    try:
        tied = json.loads(metadata.get(TIED_KEY, "{}"))
    except (ValueError, RecursionError):  # not JSON, or an integer of over 4300 digits
        tied = None
    if not isinstance(tied, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tied.items()):
        raise CheckpointError(f"{path}: the tied-weights entry ({TIED_KEY}) in the metadata is not a name -> name map")
    return tied


def tied_aliases(metadata: dict[str, str], path: str) -> dict[str, str]:
    """The tied-weights map ``{alias: stored name}`` of a checkpoint's metadata, or a CheckpointError."""
    return _tied(metadata, path)


def check_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: str) -> None:
    """Raise CheckpointError when the stored SHA-256 does not match (files saved without one pass)."""
    stored = metadata.get(DIGEST_KEY)
    if stored is not None and stored != digest(tensors, metadata.get(SPEC_KEY, ""), metadata.get(TIED_KEY, "")):
        raise CheckpointError(f"{path}: the file is corrupted (its SHA-256 differs from the one saved in it)")


def check_state(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], path: str) -> None:
    """Raise CheckpointError listing missing, unexpected and mis-shaped tensors."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = sorted(
        f"{k} {tuple(found[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(expected) & set(found)
        if tuple(found[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
        if items:
            shown = ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(f"{path}: the weights do not match the spec: " + "; ".join(problems))


def load(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
         allow_large: bool = False) -> Any:
    """Rebuild a model from a checkpoint alone (``save``'s file or a run folder).

    Before anything is built: the checksum, then the stored spec's sizes by arithmetic
    against the file's own tensor names, shapes, dtypes and bytes, then whether the model
    fits ``device``'s memory (``allow_large=True`` skips only that last check).
    """
    from .build import as_device, build_model
    from .checkpoint_check import check_against_spec, header_of
    from .size import check_fits

    device = as_device(device, "load(device=...)")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise CheckpointError(f"load(dtype=...): {dtype!r} is not a floating-point torch dtype (torch.bfloat16, ...)")
    tensors, metadata = read_checkpoint(path)
    stored = dict(tensors)
    check_digest(stored, metadata, str(path))
    spec = spec_of(metadata, str(path))
    for alias, source in _tied(metadata, str(path)).items():
        if source in tensors:
            tensors.setdefault(alias, tensors[source])
    sample = check_against_spec(spec, header_of(tensors), str(path), _file_bytes(path))
    if not allow_large:
        check_fits(sample.bytes_by_part(), device if device.type != "meta" else torch.device("cpu"),
                   "loading this checkpoint", f"{path}: the stored spec: ",
                   force_hint="load(..., allow_large=True) to build it anyway")
    model = build_model(spec)
    model.load_state_dict(tensors, strict=True)
    from .tokenizers.resolve import attach

    attach(model, path, metadata)  # model.tokenizer: the tokenizer.json the checkpoint names, if any
    return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)


def _file_bytes(path: str | os.PathLike) -> int:
    file = os.path.join(path, "model.safetensors") if os.path.isdir(path) else path
    try:
        return os.path.getsize(file)
    except OSError:
        return 0
