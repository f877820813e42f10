"""Malformed variants of valid files, generated: each field of a JSON document changed in type,
shape, size, encoding and nesting, and the file itself truncated, emptied, re-encoded or
replaced by a folder. Used by the tests that check every reader answers in one line.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Iterator

DEEP = 100_000  # nesting of the deep documents (far beyond Python's recursion limit)

# What a field's value becomes: other types, other shapes, extreme sizes, odd strings.
VALUES: dict[str, Any] = {
    "null": None, "true": True, "false": False, "zero": 0, "negative": -7, "float": 2.5, "nan": float("nan"),
    "inf": float("inf"), "huge": 10**30, "string": "abc", "numeric string": "12", "empty string": "",
    "escape string": "\x1b[31mred\x1b[0m", "long string": "x" * 100_000, "list": [1, 2], "empty list": [],
    "object": {"a": 1}, "empty object": {}, "list of objects": [{"a": [1]}],
}


def mutations_of(value: Any) -> Iterator[tuple[str, Any]]:
    """(label, replacement) for one JSON value: every entry of VALUES that differs from it, the
    value wrapped in a list and in an object, and numbers at their edges."""
    for label, other in VALUES.items():
        if type(other) is not type(value) or other != value:
            yield label, other
    yield "wrapped in a list", [value]
    yield "wrapped in an object", {"value": value}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        yield "negated", -value if value else -1
        yield "2**64", 2**64
        yield "1e308 * 10", 1e308 * 10


def field_paths(doc: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (a tuple of keys and indices) into a JSON document, the document itself first."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from field_paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from field_paths(value, prefix + (i,))


def get(doc: Any, path: tuple) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def replaced(doc: Any, path: tuple, value: Any) -> Any:
    """A copy of ``doc`` with the value at ``path`` replaced (the whole document when path is ())."""
    if not path:
        return value
    copy = json.loads(json.dumps(doc))
    parent = get(copy, path[:-1])
    parent[path[-1]] = value
    return copy


def removed(doc: Any, path: tuple) -> Any:
    copy = json.loads(json.dumps(doc))
    parent = get(copy, path[:-1])
    del parent[path[-1]]
    return copy


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()  # NaN and Infinity as Python writes them (JSON5-ish, as old files may hold)


def json_documents(doc: Any, rng: random.Random, per_field: int | None = None) -> Iterator[tuple[str, bytes]]:
    """(label, bytes) variants of the JSON document ``doc``: each field mutated (a sample of
    ``per_field`` mutations per field when given), each key removed, and document-level damage."""
    for path in field_paths(doc):
        where = ".".join(map(str, path)) or "<document>"
        options = list(mutations_of(get(doc, path)))
        if per_field is not None and len(options) > per_field:
            options = rng.sample(options, per_field)
        for label, value in options:
            yield f"{where}: {label}", dumps(replaced(doc, path, value))
        if path:
            yield f"{where}: removed", dumps(removed(doc, path))
    yield from damaged_bytes(dumps(doc))


def damaged_bytes(data: bytes) -> Iterator[tuple[str, bytes]]:
    """The bytes of a valid file damaged as a whole: cut, emptied, re-encoded, nested, bloated."""
    yield "empty", b""
    yield "cut in half", data[: len(data) // 2]
    yield "cut by one byte", data[:-1]
    yield "invalid UTF-8", data[:1] + b"\xff\xfe" + data[1:]
    yield "UTF-16", data.decode("utf-8", "replace").encode("utf-16")
    yield "a NUL byte", data[:1] + b"\0" + data[1:]
    yield "nested 100000 deep", b"[" * DEEP + b"]" * DEEP
    yield "objects nested 100000 deep", b'{"a":' * DEEP + b"1" + b"}" * DEEP
    yield "a 5000-digit integer", b"1" * 5000
    yield "two documents", data + b"\n" + data
    yield "binary noise", bytes(random.Random(len(data)).randrange(256) for _ in range(256))


def write_variant(path: Path, data: bytes | None) -> None:
    """Put ``data`` at ``path`` (None: a folder in its place)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if data is None:
        path.mkdir()
        (path / "inside").write_text("a folder where a file belongs")
    else:
        path.write_bytes(data)


def snapshot(folder: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every path below ``folder``: (bytes of a file or None, mtime in ns) - what "unchanged" compares."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            path = Path(root) / name
            st = path.lstat()
            out[str(path.relative_to(folder))] = (path.read_bytes() if path.is_file() and not path.is_symlink()
                                                  else None, st.st_mtime_ns)
    return out


def one_error_line(text: str) -> bool:
    """``text`` (stderr) is one line starting ``error:`` or naming a place, and no traceback."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in text


