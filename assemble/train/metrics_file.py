"""Reading ``metrics.jsonl`` back (``--resume``, ``compare``): every malformed line is one error line.

A record is a JSON object on one line: ``step`` a whole number from 0 to 2**63 - 1, ``split``
(if present) a short string, every other value a number or null. The file is read line by line
with a bounded line length, so a hostile file costs no more memory than its longest allowed line.
A last line without its newline that does not parse is a record cut by a crash, and is skipped.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from stackform.registry import StackformError

MAX_LINE = 1 << 16  # bytes; the records stackform writes are about 200
MAX_STEP = 2**63 - 1
MAX_SPLIT = 64  # characters of a split name ("train", "val")


class MetricsError(StackformError):
    """A metrics.jsonl that cannot be read: the message names the file, the line and the problem."""


def _show(value: Any) -> str:
    """A short, escaped rendering of a JSON value for an error line."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int) and abs(value) >= 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any) -> bool:
    """A JSON number (not a boolean) that a float can hold (NaN and infinities included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def check_record(record: Any) -> str | None:
    """Why ``record`` is not a metrics record, or None."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {_show(record) if not isinstance(record, list) else 'a JSON array'}"
    if "step" not in record:
        return "no 'step'"
    for key, value in record.items():
        if key == "step":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_STEP:
                return f"step: expected a whole number from 0 to 2**63 - 1, got {_show(value)}"
        elif key == "split":
            if not isinstance(value, str) or not 0 < len(value) <= MAX_SPLIT or not value.isprintable():
                return f"split: expected a short printable name such as 'train' or 'val', got {_show(value)}"
        elif value is not None and not _number(value):
            return f"{_show(key)}: expected a number or null, got {_show(value)}"
    return None


def _parse(raw: bytes) -> Any:
    """The JSON value of one line; ValueError (with a short reason) when it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start}: {exc.reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a JSON line ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ValueError("not a JSON line (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ValueError(f"not a JSON line ({str(exc).splitlines()[0][:80]})") from None


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The checked records of ``path``, in file order (a half-written last line is skipped)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise MetricsError(f"{path}: {what}; expected the metrics.jsonl file of a run")
        handle = open(path, "rb")
    except OSError as exc:
        raise MetricsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    records = []
    with handle:
        number = 0
        while True:
            try:
                raw = handle.readline(MAX_LINE + 1)
            except OSError as exc:
                raise MetricsError(f"{path}: cannot read ({exc.strerror or exc})") from None
            if not raw:
                break
            number += 1
            complete = raw.endswith(b"\n")
            if not complete and len(raw) > MAX_LINE:
                raise MetricsError(f"{path}:{number}: a line longer than {MAX_LINE} bytes; not a metrics record")
            if not raw.strip():
                continue
            try:
                record = _parse(raw)
            except ValueError as exc:
                if not complete:  # no newline after it: cut by a crash, or still being written
                    break
                raise MetricsError(f"{path}:{number}: {exc}") from None
            problem = check_record(record)
            if problem:
                raise MetricsError(f"{path}:{number}: {problem}")
            records.append(record)
    return records

