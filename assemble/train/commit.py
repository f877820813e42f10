"""One checkpoint is one commit: a run's model.safetensors and train_state.safetensors change together.

Both files of a save carry one commit id, ``<step>-<16 random hex digits>``; the training state
also records the SHA-256 of the model file's bytes. A save runs in this order:

1. the new model file is written to a temporary file beside model.safetensors and flushed;
2. the new training state is written (atomically) to ``.train_state.pending.safetensors``;
3. the temporary model file is renamed onto model.safetensors: the commit point;
4. the pending state is renamed onto train_state.safetensors.

A crash (kill -9, power loss) before 3 leaves the previous pair as it was (a stale pending
file pairs with no model and is ignored, then overwritten); after 3, the new model file and
its state in the pending file, which a resume reads and the next save moves into place
(``settle``). model.safetensors is always one whole model file that ``load`` reads.
``find_pair`` picks the state whose commit id and model SHA-256 match model.safetensors and
refuses, in one line and without changing anything, a pair that does not belong together.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from ..checkpoint import checkpoint_bytes, fsync_folder, replace_with, write_temp
from ..errors import CheckpointError
from .state import COMMIT_KEY, MODEL_SHA_KEY, PAIRING_KEYS, STATE_FILE, STATE_KEY, train_state_bytes
from .state_check import parse_counters

MODEL_FILE = "model.safetensors"
PENDING_FILE = ".train_state.pending.safetensors"  # a saved state whose model file may not be in place yet


def new_commit(step: int) -> str:
    return f"{step}-{secrets.token_hex(8)}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def read_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file (its header only); every failure is a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); an interrupted copy?")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable safetensors file ({reason})") from None


def settle(folder: Path) -> None:
    """Finish a save that a crash interrupted after its commit point (the pending state pairs with the model)."""
    pending, model = folder / PENDING_FILE, folder / MODEL_FILE
    if not (pending.is_file() and model.is_file()):
        return
    try:
        commit = read_metadata(model).get(COMMIT_KEY)
        matches = commit is not None and read_metadata(pending).get(COMMIT_KEY) == commit
    except CheckpointError:
        return  # not ours to finish; the next save overwrites it
    if matches:
        _move(pending, folder / STATE_FILE)


def save_checkpoint(folder: Path, model: Any, step: int, optimizer: torch.optim.Optimizer,
                    data_generator: torch.Generator, counters: Any, **state: Any) -> None:
    """Write the model and its training state as one commit (see the module docstring).

    ``model``: what ``checkpoint.save`` takes (a model, or consolidate.Weights); ``state``: the
    keyword arguments of ``train_state_bytes`` for a distributed run (optimizer_state, rng).
    An OSError (a full disk, a folder gone) is one CheckpointError; the last whole pair stays.
    """
    try:
        _commit(folder, model, step, optimizer, data_generator, counters, state)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise CheckpointError(f"{folder}: the checkpoint of step {step} could not be written ({reason}); the last "
                              "whole checkpoint in the folder is kept (--resume continues from it)") from None


def _commit(folder: Path, model: Any, step: int, optimizer: torch.optim.Optimizer,
            data_generator: torch.Generator, counters: Any, state: dict[str, Any]) -> None:
    settle(folder)
    commit = new_commit(step)
    model_path = folder / MODEL_FILE
    data = checkpoint_bytes(model, model_path, metadata={"step": str(step), COMMIT_KEY: commit})
    model_sha = hashlib.sha256(data).hexdigest()
    staged = write_temp(model_path, data)
    del data  # the state's bytes need the memory
    try:
        state_bytes = train_state_bytes(optimizer, data_generator, counters, commit=commit,
                                        model_sha256=model_sha, **state)
        replace_with(write_temp(folder / PENDING_FILE, state_bytes), folder / PENDING_FILE)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    replace_with(staged, model_path)  # the commit point
    _move(folder / PENDING_FILE, folder / STATE_FILE)


def _move(source: Path, target: Path) -> None:
    """Rename ``source`` onto ``target`` durably (a failure keeps ``source``: it may be the only copy)."""
    os.replace(source, target)
    fsync_folder(target.parent)


@dataclass
class Pair:
    """The training state that belongs with a run's model.safetensors."""

    state: Path
    step: int
    commit: str | None  # None: a pair saved before commit ids (it cannot be checked)


def _step(meta: dict[str, str]) -> int | None:
    text = meta.get("step", "")
    return int(text) if text.isdigit() and len(text) < 20 else None


def find_pair(folder: Path, check_sha: bool = True) -> Pair:
    """The state that pairs with ``folder``'s model.safetensors; a torn pair is one CheckpointError.
    Reads only (``check_sha``: also hash the model file, as a resume does before it loads the state)."""
    model = folder / MODEL_FILE
    model_meta = read_metadata(model)
    commit = model_meta.get(COMMIT_KEY)
    state = folder / STATE_FILE
    seen: dict[Path, dict[str, str]] = {}
    for path in (state, folder / PENDING_FILE):
        if not path.exists():
            continue
        meta = seen[path] = read_metadata(path)
        if commit is not None and meta.get(COMMIT_KEY) == commit:
            return _checked(model, model_meta, path, meta, check_sha)
    if not seen:
        raise CheckpointError(f"{folder}: no {STATE_FILE} beside {MODEL_FILE}; a run folder holds both")
    if commit is None and state in seen and not any(key in seen[state] for key in PAIRING_KEYS):
        counters = parse_counters(seen[state].get(STATE_KEY, "null"), str(state), STATE_KEY)
        if counters["step"] == (_step(model_meta) or 0):  # saved before commit ids: only the steps can be compared
            return Pair(state, counters["step"], None)
    raise _torn(folder, model_meta, seen.get(state) or next(iter(seen.values())))


def _checked(model: Path, model_meta: dict[str, str], path: Path, meta: dict[str, str], check_sha: bool) -> Pair:
    """The pair of ``model`` and the state at ``path`` (same commit id), once its step and SHA-256 agree."""
    counters = parse_counters(meta.get(STATE_KEY, "null"), str(path), STATE_KEY)
    commit = model_meta[COMMIT_KEY]
    if _step(model_meta) != counters["step"] or not commit.startswith(f"{counters['step']}-"):
        raise CheckpointError(f"{model}: step: {model_meta.get('step')!r:.30} does not match the step "
                              f"{counters['step']} of the {STATE_FILE} saved with it (damaged metadata?)")
    recorded = meta.get(MODEL_SHA_KEY)
    if not isinstance(recorded, str) or len(recorded) != 64:
        raise CheckpointError(f"{path}: {MODEL_SHA_KEY}: {recorded!r:.80} is not the SHA-256 of a model file")
    if check_sha and recorded != file_sha256(model):
        raise CheckpointError(
            f"{model}: its SHA-256 differs from the one recorded in {path.name} ({MODEL_SHA_KEY}): the model file "
            "changed after that save, or the record is damaged; put back the files of one save, or start a new "
            "run (--overwrite)")
    return Pair(path, counters["step"], commit)


def _torn(folder: Path, model_meta: dict[str, str], meta: dict[str, str]) -> CheckpointError:
    def label(m: dict[str, str], step: str) -> str:
        return f"step {step:.20}, commit {m.get(COMMIT_KEY, 'none')!s:.40}"

    state_step = str(meta.get(COMMIT_KEY, "?")).split("-")[0]
    if COMMIT_KEY not in meta:
        try:
            state_step = str(parse_counters(meta.get(STATE_KEY, "null"), "", STATE_KEY)["step"])
        except CheckpointError:
            state_step = "?"
    return CheckpointError(
        f"{folder}: {MODEL_FILE} ({label(model_meta, str(model_meta.get('step', '?')))}) and {STATE_FILE} "
        f"({label(meta, state_step)}) are not one checkpoint; resuming would pair the weights with another "
        f"save's optimizer state. The weights alone still load (generate, inspect); to train on, put back the "
        f"{STATE_FILE} saved with them, or start a new run (--overwrite)")
