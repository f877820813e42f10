"""Sequence-to-sequence data: the generated tasks ``numbers``, ``copy``, ``reverse`` and TSV pairs.

Generated tasks hold out part of their input space: an input is held out when a hash of
it falls below ``val_fraction``, so no validation input is ever seen in training.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path

from .errors import DataError
from .number_words import number_to_words
from .text import read_utf8_chunks
from .tokens import is_val_block

Pairs = list[tuple[str, str]]
LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def held_out(key: str, fraction: float) -> bool:
    """Whether an input belongs to the validation part of a generated task's input space."""
    return zlib.crc32(key.encode()) / 2**32 < fraction


def _number(rng: random.Random, max_number: int) -> int:
    """Digit count uniform, then uniform among numbers of that many digits (0 counts as one digit)."""
    digits = rng.randint(1, len(str(max_number)))
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, min(10**digits - 1, max_number))


def _string(rng: random.Random, min_length: int, max_length: int) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(min_length, max_length)))


def generated_pairs(data, seed: int) -> tuple[Pairs, Pairs]:
    """(train, val) pairs of a builtin generated task; val inputs are distinct and never in train."""
    rng = random.Random(f"{data.name}:{seed}")
    if data.name == "numbers":
        draw = lambda: str(_number(rng, data.max_number))  # noqa: E731
        target = lambda src: number_to_words(int(src))  # noqa: E731
    else:
        draw = lambda: _string(rng, data.min_length, data.max_length)  # noqa: E731
        target = (lambda src: src) if data.name == "copy" else (lambda src: src[::-1])
    val: dict[str, str] = {}
    for _ in range(50 * data.n_val):
        if len(val) >= data.n_val:
            break
        src = draw()
        if held_out(src, data.val_fraction):
            val.setdefault(src, target(src))
    train: Pairs = []
    for _ in range(50 * data.n_examples):
        if len(train) >= data.n_examples:
            break
        src = draw()
        if not held_out(src, data.val_fraction):
            train.append((src, target(src)))
    if not val or not train:
        raise DataError(f"builtin '{data.name}': the input space is too small to hold out a validation part; "
                        "widen it (max_number, max_length) or change val_fraction")
    return train, list(val.items())


def tsv_pairs(path: str, val_fraction: float, max_len: int | None = None) -> tuple[Pairs, Pairs]:
    """(train, val) from ``source<TAB>target`` lines; an evenly spread ``val_fraction`` of lines is val.

    Lines end at ``\\n`` (a ``\\r`` before it is dropped) and nowhere else: a field may hold any other
    character. With ``max_len`` (the model's), a pair that does not fit is an error naming its line."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise DataError(f"{path}: a directory; pairs data is one TSV file (train.data.path)")
    if not file.is_file():
        what = "not a regular file" if file.exists() else "no such file"
        raise DataError(f"{path}: {what} (train.data.path)")
    text = b"".join(read_utf8_chunks(file)).decode("utf-8")
    pairs: list[tuple[int, str, str]] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        if line.count("\t") != 1:
            found = f"{line.count(chr(9))} tabs"
            raise DataError(f"{path}:{lineno}: expected one tab between source and target, found {found}")
        src, tgt = line.split("\t")
        if not src:
            raise DataError(f"{path}:{lineno}: the source (before the tab) is empty")
        need = max(len(src.encode()), len(tgt.encode()) + 1)  # bytes; the target gets bos (inputs) / eos (labels)
        if max_len is not None and need > max_len:
            raise DataError(f"{path}:{lineno}: the pair needs {need} positions (target + bos/eos); "
                            f"model.max_len is {max_len}")
        pairs.append((lineno, src, tgt))
    if len(pairs) < 2:
        raise DataError(f"{path}: needs at least 2 pairs (one for training, one for validation), found {len(pairs)}")
    train = [(s, t) for i, (_, s, t) in enumerate(pairs) if not is_val_block(i, val_fraction)]
    val = [(s, t) for i, (_, s, t) in enumerate(pairs) if is_val_block(i, val_fraction)]
    if not val:
        val, train = train[-1:], train[:-1]
    return train, val
