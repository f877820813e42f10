"""A damaged train_state.safetensors is one line, never a traceback or a silently wrong resume.

Generated, not hand-picked: every tensor entry of a valid state is mutated in type (dtype),
shape, size and value, dropped and renamed; every metadata entry is dropped, replaced and
added to; every counter gets every wrong type and out-of-range value; bytes are flipped all
over the file. Each mutation is written twice: as it is (the stored SHA-256 no longer
matches) and resealed with a fresh checksum (as a crafted file would be), so the checks of
types, shapes and ranges are tested on their own. A resume must refuse each with one
StackformError line naming the file, and the mutated entry where the file is still readable.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Callable, Iterator

import pytest
import torch
from safetensors.torch import save as safetensors_bytes

from stackform.assemble import StackformError, load, train
from stackform.assemble.checkpoint import DIGEST_KEY, read_checkpoint
from stackform.assemble.cli import main
from stackform.assemble.train.commit import find_pair
from stackform.assemble.train.optim import build_optimizer
from stackform.assemble.train.state_check import OPTIONAL_COUNTERS
from stackform.assemble.train.state import (COMMIT_KEY, MODEL_SHA_KEY, STATE_FILE, STATE_KEY, load_train_state,
                                            state_digest)

Mutation = Callable[[dict, dict], None]  # edits (tensors, metadata) in place


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    model = {"kind": "decoder", "vocab_size": 259, "max_len": 40, "d_model": 32, "n_heads": 2, "n_layers": 2,
             "pad_id": 256, "bos_id": 257, "eos_id": 258}
    spec = {"name": "state-faults", "model": model, "train": {"steps": 2, "batch_size": 4, "seq_len": 16,
                                                               "eval_steps": 1, "samples": 0,
                                                               "schedule": {"type": "cosine", "warmup": 1}}}
    root = tmp_path_factory.mktemp("state-faults")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STACKFORM_NO_BAR", "1")
        patch.setenv("STACKFORM_CACHE", str(root / "cache"))
        train(spec, out_dir=root / "run", quiet=True)
    return root / "run"


def _other_dtype(t: torch.Tensor) -> list[torch.dtype]:
    return [torch.float64, torch.int64, torch.bfloat16] if t.is_floating_point() else [torch.int16, torch.float32]


def _tensor_mutations(name: str, t: torch.Tensor, step: int, every: bool) -> Iterator[tuple[str, Mutation]]:
    """Wrong dtypes, shapes, sizes and values of one entry (``every``: all of them, else a few)."""
    def put(value):
        return lambda tensors, meta: tensors.__setitem__(name, value)

    yield "drop", lambda tensors, meta: tensors.pop(name)
    yield f"dtype {_other_dtype(t)[0]}", put(t.to(_other_dtype(t)[0]))
    yield "extra dim", put(t.reshape(1, *t.shape))
    if not every:
        return
    yield "rename", lambda tensors, meta: tensors.__setitem__(name + "x", tensors.pop(name))
    for dtype in _other_dtype(t)[1:]:
        yield f"dtype {dtype}", put(t.to(dtype))
    yield "one more", put(torch.cat([t.reshape(-1), t.reshape(-1)[:1]]))
    yield "empty", put(t.reshape(-1)[:0])
    if name.endswith(".step"):
        for value in (0.0, -1.0, 2.5, float(step + 1), 1e30, float("nan"), float("inf")):
            yield f"value {value}", put(torch.tensor(value, dtype=t.dtype))
    elif t.is_floating_point():
        for value in (float("nan"), float("inf")):
            yield f"value {value}", put(t.clone().reshape(-1).index_fill(0, torch.tensor([0]), value).reshape(t.shape))
        if name.endswith("exp_avg_sq"):
            yield "negative", put(-1 - t)
    else:
        yield "zeros", put(torch.zeros_like(t))


def _counter_values(field: str) -> Iterator[tuple[str, str]]:
    """(label, JSON text of a wrong value) for one counter."""
    wrong = ['"1"', "true", "null", "[]", "{}", "-1", str(10**30), "1" + "0" * 5000, "NaN", "Infinity", "-Infinity"]
    if field in ("step", "tokens", "skipped"):
        wrong += ["1.5"]
    if field == "scaler":
        wrong = ['"1"', "[]", "3", '{"scale": 1.0}', '{"scale": "x", "growth_factor": 2.0, "backoff_factor": 0.5, '
                 '"growth_interval": 2000, "_growth_tracker": 0}', '{"other": 1}']
    if field == "schedule":  # a time-budget run's; {} or absent (older states) is a run without one
        wrong = ['"1"', "[]", "3", '{"warm": 0.5}', '{"warm": 2, "progress": 0}', '{"warm": 1, "progress": NaN}',
                 '{"warm": 1, "progress": 0.5, "other": 1}']
    for text in wrong:
        yield text[:20], text


def _counters_text(meta: dict, field: str, text: str) -> str:
    data = json.loads(meta[STATE_KEY])
    data[field] = "@@"
    return json.dumps(data, sort_keys=True).replace('"@@"', text)


def _metadata_mutations(meta: dict) -> Iterator[tuple[str, str, Mutation]]:
    """(label, expected entry in the message, mutation)."""
    for key in meta:
        yield f"drop {key}", key, lambda tensors, m, key=key: m.pop(key)
        yield f"garbage {key}", key, lambda tensors, m, key=key: m.__setitem__(key, "garbage")
    yield "extra key", "stackform.extra", lambda tensors, m: m.__setitem__("stackform.extra", "1")
    counters = json.loads(meta[STATE_KEY])
    for field in counters:
        if field not in OPTIONAL_COUNTERS:  # absent from older states: dropping it is allowed
            yield f"drop counter {field}", field, lambda t, m, f=field: m.__setitem__(
                STATE_KEY, json.dumps({k: v for k, v in json.loads(m[STATE_KEY]).items() if k != f}))
        for label, text in _counter_values(field):
            yield f"counter {field}={label}", field, lambda t, m, f=field, x=text: m.__setitem__(
                STATE_KEY, _counters_text(m, f, x))
    yield "unknown counter", "epoch", lambda t, m: m.__setitem__(STATE_KEY, m[STATE_KEY][:-1] + ', "epoch": 1}')
    yield "skipped above step", "skipped", lambda t, m: m.__setitem__(STATE_KEY, _counters_text(m, "skipped", "3"))
    for text in ("[]", "5", "[" * 100_000, "{", '"x"'):
        yield f"counters {text[:8]}", STATE_KEY, lambda t, m, x=text: m.__setitem__(STATE_KEY, x)


# a changed commit id or model SHA-256 is a torn pair or a changed model file: the message names the pair
PAIRING = {COMMIT_KEY: "not one checkpoint", MODEL_SHA_KEY: MODEL_SHA_KEY}


def _resume_reads(folder: Path, optimizer: torch.optim.Optimizer) -> None:
    """What a resume reads before it trains: the pair of files, then every entry of the state."""
    load_train_state(find_pair(folder).state, optimizer, torch.Generator())


def _write(path: Path, tensors: dict, meta: dict, reseal: bool) -> None:
    if reseal and DIGEST_KEY in meta:
        meta[DIGEST_KEY] = state_digest(tensors, meta)
    path.write_bytes(safetensors_bytes(tensors, metadata=meta))


def _refused(folder: Path, optimizer, expected: str | None) -> str | None:
    """None when the resume refuses in one line naming the file (and ``expected``); else what went wrong."""
    try:
        _resume_reads(folder, optimizer)
    except StackformError as exc:
        text = str(exc)
        if "\n" in text or str(folder) not in text:
            return f"not one line naming the file: {text[:300]}"
        if expected is not None and expected not in text:
            return f"does not name {expected}: {text[:300]}"
        return None
    except Exception as exc:  # noqa: BLE001 - a traceback is the failure this test looks for
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return "accepted"


@pytest.fixture
def damaged(run, tmp_path):
    """(folder, original state bytes, tensors, metadata, optimizer): a copy of the run to damage."""
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    tensors, meta = read_checkpoint(folder / STATE_FILE)
    tensors = {name: t.clone() for name, t in tensors.items()}  # not views of the file this test rewrites
    model = load(folder)
    optimizer = build_optimizer(model, model.spec.train.optimizer, torch.device("cpu"))
    _resume_reads(folder, optimizer)  # the undamaged state is accepted
    return folder, (folder / STATE_FILE).read_bytes(), tensors, meta, optimizer


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_every_mutated_entry_is_refused_in_one_line(damaged):
    folder, original, tensors, meta, optimizer = damaged
    step = json.loads(meta[STATE_KEY])["step"]
    cases: list[tuple[str, str | None, Mutation]] = []
    last = max(int(name.split(".")[1]) for name in tensors if name.startswith("optimizer."))
    for name, t in tensors.items():  # every entry; all mutations of the RNGs and of three parameters' state
        every = not name.startswith("optimizer.") or name.split(".")[1] in ("0", "1", str(last))
        cases += [(f"{name}: {label}", name, mutation) for label, mutation in _tensor_mutations(name, t, step, every)]
    cases += [(label, PAIRING.get(entry, entry), mutation) for label, entry, mutation in _metadata_mutations(meta)]
    failures, tried = [], 0
    for i, (label, expected, mutation) in enumerate(cases):
        # resealed: the checks of each entry on their own; as is (every third case): the checksum sees it
        for reseal in (True, False) if DIGEST_KEY not in label else (False,):
            if not reseal and i % 3 and DIGEST_KEY not in label:
                continue
            t, m = dict(tensors), dict(meta)
            mutation(t, m)
            _write(folder / STATE_FILE, t, m, reseal)
            tried += 1
            problem = _refused(folder, optimizer, expected if reseal or "garbage" in label else None)
            if problem:
                failures.append(f"{label} ({'resealed' if reseal else 'as is'}): {problem}")
    (folder / STATE_FILE).write_bytes(original)
    assert not failures, f"{len(failures)} of {tried} mutations:\n" + "\n".join(failures[:40])
    assert tried > 500


def _raw_header(original: bytes, edit: Callable[[dict], None]) -> bytes:
    size = struct.unpack("<Q", original[:8])[0]
    header = json.loads(original[8:8 + size])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + original[8 + size:]


@pytest.mark.parametrize("edit", [
    lambda h: h["__metadata__"].__setitem__("format", 5),  # metadata values are strings
    lambda h: h.__setitem__("__metadata__", ["format", "pt"]),
    lambda h: h["rng.torch"].__setitem__("data_offsets", [0, 10**12]),  # beyond the file
    lambda h: h["rng.torch"].__setitem__("dtype", "F8_E4M3"),
], ids=["metadata value not a string", "metadata not an object", "offsets beyond the file", "exotic dtype"])
def test_malformed_headers_are_one_line(damaged, edit):
    folder, original, _, _, optimizer = damaged
    (folder / STATE_FILE).write_bytes(_raw_header(original, edit))
    assert _refused(folder, optimizer, None) is None


def test_every_flipped_byte_is_refused(damaged):
    """Bit flips in the header (every 13th byte) and in the tensor data: never accepted, never a traceback."""
    folder, original, _, _, optimizer = damaged
    header_end = 8 + struct.unpack("<Q", original[:8])[0]
    positions = list(range(0, header_end, 13)) + list(range(header_end, len(original), max(1, len(original) // 60)))
    failures = []
    for position in positions:
        data = bytearray(original)
        data[position] ^= 0x01
        (folder / STATE_FILE).write_bytes(bytes(data))
        problem = _refused(folder, optimizer, None)
        if problem:
            failures.append(f"byte {position}: {problem}")
    (folder / STATE_FILE).write_bytes(original)
    assert not failures, f"{len(failures)} of {len(positions)} flips:\n" + "\n".join(failures[:30])


@pytest.mark.parametrize("mutation,message", [
    (lambda t, m: t.pop("optimizer.0.exp_avg"), "optimizer.0.exp_avg: missing"),
    (lambda t, m: t.__setitem__("rng.torch", t["rng.torch"][:100]), "rng.torch: a generator state"),
    (lambda t, m: m.__setitem__(STATE_KEY, _counters_text(m, "step", str(10**30))), "step"),
    (lambda t, m: t.__setitem__("optimizer.1.exp_avg_sq", t["optimizer.1.exp_avg_sq"].double()),
     "optimizer.1.exp_avg_sq: torch.float64"),
], ids=["missing moment", "short rng", "step 10**30", "float64 moment"])
def test_train_and_the_cli_refuse_and_leave_the_folder_as_it_was(damaged, mutation, message, capsys):
    folder, _, tensors, meta, _ = damaged
    t, m = dict(tensors), dict(meta)
    mutation(t, m)
    _write(folder / STATE_FILE, t, m, reseal=True)
    before = _snapshot(folder)
    with pytest.raises(StackformError, match=message):
        train(resume=folder, overrides=["train.steps=3"], quiet=True)
    assert main(["train", "--resume", str(folder), "train.steps=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {folder / STATE_FILE}: ") and message in err
    assert "Traceback" not in err
    assert _snapshot(folder) == before
