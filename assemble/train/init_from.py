"""Fine-tuning: ``train.init_from`` (a run folder, a .safetensors checkpoint, or an ``import-hf``
or Hugging Face folder) loads weights into the spec's model, and ``train.freeze`` fixes
parameters by name pattern.

The source's tensor names and shapes are checked against the model before any tensor is read;
a mismatch names the tensor, both shapes and the spec keys whose values differ. LoRA adapters
(``train.lora``) are new: the only tensors the source may lack. Nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from stackform.specs import ModelSpec, Spec

from ..errors import CheckpointError
from .device import TrainingError
from .lora import is_adapter_tensor, name_matches

FLAG = "train.init_from"


def is_hf_folder(path: Path) -> bool:
    """A Hugging Face model folder (config.json, weights not saved by stackform)."""
    if not (path / "config.json").is_file():
        return False
    try:
        with safe_open(str(path / "model.safetensors"), framework="pt", device="cpu") as handle:
            return "stackform.spec" not in (handle.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return True  # sharded, or no model.safetensors: import_hf says what is wrong


def _spec_differences(ours: ModelSpec, theirs: ModelSpec) -> str:
    from ..interop.family import differences

    found = differences(ours.model_dump(mode="json"), theirs.model_dump(mode="json"))
    if not found:
        return ""
    shown = "; ".join(f"model.{path}: this spec has {a!r}, the source's has {b!r}" for path, a, b in found[:3])
    return f" ({shown}{'; ...' if len(found) > 3 else ''})"


def _check_names(model: torch.nn.Module, header: dict[str, tuple], source: str, theirs: ModelSpec | None) -> None:
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    why = _spec_differences(model.spec.model, theirs) if theirs is not None else ""
    for name, shape in expected.items():
        if name in header and tuple(header[name][0]) != shape:
            raise TrainingError(f"{FLAG}: {source}: tensor {name} is {list(header[name][0])} there but "
                                f"{list(shape)} in this spec{why}")
    missing = [n for n in expected if n not in header and not is_adapter_tensor(n)]
    extra = [n for n in header if n not in expected]
    if missing or extra:
        what = (f"lacks {', '.join(missing[:3])}" if missing else "") + (" and " if missing and extra else "") + \
               (f"has tensors this spec does not build: {', '.join(extra[:3])}" if extra else "")
        raise TrainingError(f"{FLAG}: {source}: the weights do not fit this spec: it {what}{why}")


def _stackform_state(path: Path) -> tuple[dict[str, torch.Tensor], ModelSpec, str]:
    from ..checkpoint import read_checkpoint, spec_of, tied_aliases
    from ..checkpoint_check import read_header, verify_digest

    file, header, metadata, _ = read_header(path)
    if "stackform.spec" not in metadata:
        raise TrainingError(f"{FLAG}: {file}: a safetensors file without a stackform spec; give a stackform "
                            "checkpoint, a run folder or a Hugging Face folder (config.json + model.safetensors)")
    verify_digest(file, metadata)
    theirs = spec_of(metadata, file)
    for alias, stored in tied_aliases(metadata, file).items():
        if stored in header:
            header.setdefault(alias, header[stored])
    return header, theirs.model, file


def load_init(model: torch.nn.Module, spec: Spec) -> str:
    """Copy the weights of ``spec.train.init_from`` into ``model`` (before training); a description."""
    path = Path(os.path.expanduser(spec.train.init_from))
    if not path.exists():
        raise TrainingError(f"{FLAG}: {path}: no such file or folder")
    try:
        if path.is_dir() and is_hf_folder(path):
            from ..interop import import_hf

            source = import_hf(path, dtype=torch.float32)
            state, theirs, where = source.state_dict(), source.spec.model, str(path)
            _check_names(model, {n: (tuple(t.shape), t.dtype) for n, t in state.items()}, where, theirs)
        else:
            from ..checkpoint import read_checkpoint, tied_aliases

            header, theirs, where = _stackform_state(path)
            _check_names(model, header, where, theirs)
            tensors, metadata = read_checkpoint(where)  # every name and shape checked: now read them
            state = dict(tensors)
            for alias, stored in tied_aliases(metadata, where).items():
                state.setdefault(alias, tensors.get(stored))
    except CheckpointError as exc:
        raise TrainingError(f"{FLAG}: {exc}") from None
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name in state:
                tensor.copy_(state[name])
    return where


def freeze(model: torch.nn.Module, patterns: list[str]) -> int:
    """Fix the parameters whose names match ``patterns``; how many tensors were frozen."""
    names = [name for name, _ in model.named_parameters()]
    frozen = 0
    for i, pattern in enumerate(patterns):
        if not any(name_matches(name, pattern) for name in names):
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise TrainingError(f"train.freeze.{i}: {pattern!r} matches no parameter (they are: {shown})")
    for name, param in model.named_parameters():
        if any(name_matches(name, p) for p in patterns):
            param.requires_grad_(False)
            frozen += 1
    if not any(p.requires_grad for p in model.parameters()):
        raise TrainingError("train.freeze: every parameter is frozen; nothing would train")
    return frozen


def pattern_problems(spec: Spec) -> list[tuple[str, str]]:
    """``train.freeze`` and ``train.lora.targets`` patterns that match nothing, found on a model built
    on the meta device (no memory): (dotted key, message) each, for ``validate`` and ``train``."""
    if not spec.train.freeze and spec.train.lora is None:
        return []
    from stackform.registry import StackformError

    from ..build import build_model

    plain = spec.model_copy(update={"train": spec.train.model_copy(update={"lora": None})})
    with torch.device("meta"):
        model = build_model(plain)
    from .lora import lora_targets

    problems = []
    for active, check in ((spec.train.freeze, lambda: freeze(model, spec.train.freeze)),
                          (spec.train.lora, lambda: lora_targets(model, spec.train.lora.targets))):
        try:
            if active:
                check()
        except StackformError as exc:
            key, _, message = str(exc).partition(": ")
            problems.append((key, message))
    return problems


def prepare(model: torch.nn.Module, spec: Spec, resumed: bool) -> list[str]:
    """init_from (not on a resume: the run's own weights are loaded) and freeze; lines for the header."""
    notes = []
    if spec.train.init_from is not None and not resumed:
        notes.append(f"init from {load_init(model, spec)}")
    if spec.train.freeze:
        notes.append(f"frozen: {freeze(model, spec.train.freeze)} tensors ({', '.join(spec.train.freeze)})")
    if spec.train.lora is not None:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        notes.append(f"LoRA rank {spec.train.lora.rank} on {len(spec.train.lora.targets)} target pattern(s): "
                     f"{trainable:,} trainable parameters")
    return notes


def folder_spec(spec_like: Any) -> tuple[Any, list[str]]:
    """``stackform train FOLDER``: an import-hf or run folder fine-tunes from its own weights:
    (its spec.yaml, the overrides that set init_from to it). Anything else: unchanged, no overrides."""
    if not isinstance(spec_like, (str, os.PathLike)):
        return spec_like, []
    folder = Path(spec_like)
    if not folder.is_dir():
        return spec_like, []
    if not (folder / "spec.yaml").is_file() or not (folder / "model.safetensors").is_file():
        raise TrainingError(f"{folder}: a folder without spec.yaml and model.safetensors; give a spec file, "
                            "a zoo name, or an import-hf / run folder to fine-tune")
    return str(folder / "spec.yaml"), [f"train.init_from={json.dumps(str(folder.resolve()))}"]
