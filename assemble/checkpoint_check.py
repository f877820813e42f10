"""Does a checkpoint's stored spec describe the tensors the file holds? Answered by arithmetic.

Nothing here allocates the model: the spec is sized on the meta device one layer per
distinct layer plan (``size.sample_model``), so a 0.9 MB file whose spec claims 10**6
layers is refused in about a second, from its own numbers.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from typing import Any, Iterable, Iterator

import torch
from safetensors import SafetensorError, safe_open

from stackform.specs import Spec

from .errors import CheckpointError
from .size import ModelSizeError, SampledModel, sample_model

Header = dict[str, tuple[tuple[int, ...], torch.dtype]]  # name -> (shape, dtype) of a stored tensor
SHOWN = 5  # names listed per kind of mismatch


def header_of(tensors: dict[str, torch.Tensor]) -> Header:
    return {name: (tuple(t.shape), t.dtype) for name, t in tensors.items()}


def _listed(label: str, items: list[str], total: int) -> str:
    shown = ", ".join(items[:SHOWN])
    more = total - min(len(items), SHOWN)
    return f"{label}: {shown}" + (f" (+{more} more)" if more > 0 else "")


def stored_elements(sample: SampledModel) -> dict[str, int]:
    """Numbers a checkpoint of the sampled spec stores (parameters and persistent buffers, tied ones
    once), by the spec key that sizes them. Each takes at least a byte in the file, whatever its dtype."""
    seen: set[int] = set()
    named = []
    for name, tensor in sample.model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            named.append((name, tensor))
    return sample.by_key(named, as_bytes=False)


def check_against_spec(spec: Spec, found: Header, path: str, file_bytes: int) -> SampledModel:
    """Raise CheckpointError unless ``found`` (stored tensors and tied aliases) is what ``spec`` builds.

    In order: no more distinct layer plans than stored tensors (each is built once), the spec's
    sizes must be representable, its weights must fit in the file's own bytes, then names, shapes
    and dtypes must match. Returns the sample for further sizing.
    """
    from .build import distinct_layers

    distinct = distinct_layers(spec.model)
    if distinct > len(found):  # each distinct layer holds weights: building them to find out would be slow
        raise CheckpointError(f"{path}: the stored spec has {distinct:,} different layers but the file stores "
                              f"{len(found):,} tensors: it is not this spec's checkpoint")
    try:
        sample = sample_model(spec, f"{path}: the stored spec")
    except ModelSizeError as exc:
        raise CheckpointError(str(exc)) from None
    parts = stored_elements(sample)
    need = sum(parts.values())
    if need > file_bytes:
        key = max(parts, key=lambda k: parts[k])
        raise CheckpointError(
            f"{path}: the stored spec describes {need:,} stored numbers ({key} is {_value(spec, key)}) but the "
            f"file holds {file_bytes:,} bytes: it is not this spec's checkpoint")
    expected_count = sample.state_count()
    problems = _compare(sample.state(), expected_count, found)
    if problems:
        raise CheckpointError(f"{path}: the weights do not match the spec: " + "; ".join(problems))
    return sample


def _value(spec: Spec, key: str) -> str:
    """The value of a ``model.*`` key as a short text (a block as its dumped parameters)."""
    model = spec.model
    if key == "model.n_layers":
        return " + ".join(str(model.n_layers_of(side)) for side in model.sides)
    value = getattr(model, key.split(".", 1)[1], None)
    text = json.dumps(value.model_dump(mode="json") if hasattr(value, "model_dump") else value)
    return text if len(text) <= 80 else text[:77] + "..."


def _compare(expected: Iterable[tuple[str, tuple[int, ...], torch.dtype]], expected_count: int,
             found: Header) -> list[str]:
    """missing / unexpected / mis-shaped / wrong-dtype lines; reads at most len(found) + a margin of names."""
    limit = len(found) + 1000
    seen: set[str] = set()
    missing, shapes, dtypes = [], [], []
    n_missing = 0
    for name, shape, dtype in itertools.islice(expected, limit):
        seen.add(name)
        if name not in found:
            n_missing += 1
            if len(missing) < SHOWN:
                missing.append(name)
            continue
        got_shape, got_dtype = found[name]
        if got_shape != shape:
            shapes.append(f"{name} {got_shape} != {shape}")
        elif got_dtype != dtype and not (got_dtype.is_floating_point and dtype.is_floating_point):
            dtypes.append(f"{name} {got_dtype} != {dtype}")
    if expected_count > limit:  # the rest are missing too: the file cannot hold them
        n_missing += expected_count - limit
    unexpected = sorted(set(found) - seen) if expected_count <= limit else []
    problems = []
    for label, items, total in (("missing", missing, n_missing), ("unexpected", unexpected, len(unexpected)),
                                ("mis-shaped", sorted(shapes), len(shapes)), ("wrong dtype", sorted(dtypes), len(dtypes))):
        if total:
            problems.append(_listed(label, items, total))
    return problems


def read_header(path: str | os.PathLike) -> tuple[str, Header, dict[str, str], int]:
    """(file, tensor header, metadata, file bytes) of a checkpoint or run folder, reading no tensor data."""
    file = str(path)
    if os.path.isdir(file):
        file = os.path.join(file, "model.safetensors")
    if not os.path.isfile(file):
        raise CheckpointError(f"{file}: no such checkpoint file")
    size = os.path.getsize(file)
    if size == 0:
        raise CheckpointError(f"{file}: the file is empty (0 bytes); an interrupted copy?")
    try:
        with safe_open(file, framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            header = {}
            for name in handle.keys():
                part = handle.get_slice(name)
                header[name] = (tuple(part.get_shape()), _DTYPES.get(part.get_dtype(), torch.uint8))
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{file}: not a readable safetensors file ({reason})") from None
    return file, header, metadata, size


_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool, **{name: getattr(torch, attr) for name, attr in (
               ("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2"), ("U16", "uint16"), ("U32", "uint32"),
               ("U64", "uint64")) if hasattr(torch, attr)}}


class _LazyTensors(Mapping):
    """The tensors of an open safetensors file, read one at a time (for the checksum)."""

    def __init__(self, handle: Any):
        self.handle, self.names = handle, list(handle.keys())

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.handle.get_tensor(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def verify_digest(file: str, metadata: dict[str, str]) -> None:
    """``checkpoint.check_digest`` reading one tensor at a time (memory: the largest tensor)."""
    from .checkpoint import check_digest

    try:
        with safe_open(file, framework="pt", device="cpu") as handle:
            check_digest(_LazyTensors(handle), metadata, file)
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{file}: not a readable safetensors file ({reason})") from None


def checked_spec(path: str | os.PathLike) -> Spec:
    """The spec stored in a checkpoint, checked like ``load`` checks it (checksum, then the spec by
    arithmetic against the file's header), without building the model or holding its weights."""
    from .checkpoint import spec_of, tied_aliases

    file, header, metadata, size = read_header(path)
    verify_digest(file, metadata)
    spec = spec_of(metadata, file)
    for alias, source in tied_aliases(metadata, file).items():
        if source in header:
            header.setdefault(alias, header[source])
    check_against_spec(spec, header, file, size)
    return spec
