"""Records of JSON-lines files, Parquet files and saved Hugging Face datasets, streamed.

``record_files(data)`` lists the files a ``train.data`` section names; ``read_records(data, path,
fields, consumed)`` yields ``(where, values)`` for each record of one file, ``where`` being
``file:line`` (JSON lines) or ``file: row N`` (Arrow, Parquet) and ``values`` the strings of
``fields``. Every bad input (a broken line, a missing field, a value that is not a string) is one
DataError naming the record. ``consumed(raw)`` sees the raw bytes as they are read (hashing,
progress). Parquet and Arrow go through pyarrow (the extra ``data``), which reads columns and
never unpickles (pyarrow >= 14.0.1 refuses pickled extension types).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import DataError

MAX_LINE = 256 << 20  # bytes of one JSON line at most
MAX_STATE = 16 << 20  # bytes of a dataset folder's JSON files at most
ROWS_PER_BATCH = 4096
SUFFIXES = {"jsonl": (".jsonl", ".json"), "parquet": (".parquet",), "hf_dataset": (".arrow",)}
Record = tuple[str, tuple[str, ...]]


def pyarrow_modules() -> tuple[Any, Any, Any]:
    """(pyarrow, pyarrow.ipc, pyarrow.parquet), or one line naming the extra that brings them."""
    try:
        import pyarrow
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError:
        raise DataError("reading Parquet files and Hugging Face datasets needs pyarrow: "
                        "pip install 'stackform[data]'") from None
    return pyarrow, pyarrow.ipc, pyarrow.parquet


def _files_below(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(suffixes)
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def record_files(data: Any) -> list[Path]:
    """The files of ``data`` in reading order: ``path`` itself, or its files with the format's suffix."""
    root = Path(data.path).expanduser()
    if data.type == "hf_dataset":
        return dataset_files(root, data.split, data.path)
    if root.is_file():
        return [root]
    if not root.exists():
        raise DataError(f"{data.path}: no such file or directory (train.data.path)")
    if not root.is_dir():
        raise DataError(f"{data.path}: not a regular file or a directory (train.data.path)")
    files = _files_below(root, SUFFIXES[data.type])
    if not files:
        raise DataError(f"{data.path}: the folder holds no {' or '.join(SUFFIXES[data.type])} files (train.data.path)")
    return files


def _small_json(path: Path, folder: str) -> Any:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_STATE + 1)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > MAX_STATE:
        raise DataError(f"{path}: larger than {MAX_STATE >> 20} MiB; not the metadata of a dataset ({folder})")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DataError(f"{path}: not JSON ({str(exc).splitlines()[0][:80]})") from None


def dataset_files(root: Path, split: str | None, given: str) -> list[Path]:
    """The Arrow files of a ``save_to_disk`` folder (a Dataset, or ``split`` of a DatasetDict), in order."""
    if not root.is_dir():
        what = "no such folder" if not root.exists() else "not a folder"
        raise DataError(f"{given}: {what}; hf_dataset data is a folder written by save_to_disk (train.data.path)")
    if (root / "dataset_dict.json").is_file():
        splits = _small_json(root / "dataset_dict.json", given)
        names = splits.get("splits") if isinstance(splits, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(f"{root / 'dataset_dict.json'}: 'splits' is not a list of names")
        chosen = split or "train"
        if chosen not in names:
            raise DataError(f"{given}: no split '{chosen}' (splits: {', '.join(names)}); set train.data.split")
        if "/" in chosen or chosen in (".", ".."):
            raise DataError(f"{given}: split '{chosen}' is not a plain folder name")
        return dataset_files(root / chosen, None, f"{given}/{chosen}")
    if split is not None:
        raise DataError(f"{given}: a single dataset (no dataset_dict.json); leave train.data.split out")
    state = root / "state.json"
    if state.is_file():
        meta = _small_json(state, given)
        listed = meta.get("_data_files") if isinstance(meta, dict) else None
        names = [f.get("filename") for f in listed] if isinstance(listed, list) and all(
            isinstance(f, dict) for f in listed) else None
        if not names or not all(isinstance(n, str) and n and os.path.basename(n) == n and not n.startswith(".")
                                for n in names):
            raise DataError(f"{state}: '_data_files' is not a list of file names in the folder")
        files = [root / n for n in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise DataError(f"{given}: state.json lists {missing[0]}, which is not in the folder")
        return files
    files = _files_below(root, (".arrow",))
    if not files:
        raise DataError(f"{given}: no state.json or .arrow files; not a folder written by save_to_disk")
    return files


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object",
            type(None): "null"}.get(type(value), type(value).__name__)


def _jsonl(path: Path, fields: tuple[str, ...], consumed: Callable[[bytes], None]) -> Iterator[Record]:
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        number = 0
        while raw := handle.readline(MAX_LINE + 1):
            number += 1
            consumed(raw)
            where = f"{path}:{number}"
            if len(raw) > MAX_LINE:
                raise DataError(f"{where}: a line longer than {MAX_LINE >> 20} MiB")
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise DataError(f"{where}: not UTF-8 (byte {exc.start} of the line: {exc.reason})") from None
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not a JSON line ({exc.msg} at column {exc.colno})") from None
            except (ValueError, RecursionError) as exc:
                raise DataError(f"{where}: not a JSON line ({str(exc).splitlines()[0][:80]})") from None
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object with field '{fields[0]}', got {_kind(record)}")
            yield where, tuple(_field(record, name, where, _hint(fields)) for name in fields)


def _hint(fields: tuple[str, ...]) -> str:
    return "set train.data.field" if len(fields) == 1 else "set train.data.source_field and target_field"


def _field(record: dict, name: str, where: str, hint: str) -> str:
    if name not in record:
        shown = ", ".join(list(record)[:8]) + (", ..." if len(record) > 8 else "")
        raise DataError(f"{where}: no field '{name}' (fields: {shown or 'none'}); {hint}")
    value = record[name]
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{name}' is {_kind(value)}, not a string")
    return value


def _columns(schema: Any, fields: tuple[str, ...], path: Path) -> None:
    pa = pyarrow_modules()[0]
    for name in fields:
        if name not in schema.names:
            raise DataError(f"{path}: no column '{name}' (columns: {', '.join(schema.names[:12])}); "
                            f"{_hint(fields)}")
        kind = schema.field(name).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise DataError(f"{path}: column '{name}' holds {kind}, not strings")


def _rows(batches: Iterator[Any], fields: tuple[str, ...], path: Path) -> Iterator[Record]:
    row = 0
    for batch in batches:
        columns = [batch.column(batch.schema.get_field_index(name)).to_pylist() for name in fields]
        for values in zip(*columns):
            row += 1
            for name, value in zip(fields, values):
                if value is None:
                    raise DataError(f"{path}: row {row}: field '{name}' is null, not a string")
            yield f"{path}: row {row}", values


def _parquet(path: Path, fields: tuple[str, ...], consumed: Callable[[bytes], None]) -> Iterator[Record]:
    pq = pyarrow_modules()[2]
    _hash_file(path, consumed)
    try:
        file = pq.ParquetFile(path)
        _columns(file.schema_arrow, fields, path)
        yield from _rows(file.iter_batches(batch_size=ROWS_PER_BATCH, columns=list(fields)), fields, path)
    except DataError:
        raise
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise DataError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0][:120]})") from None


def _arrow(path: Path, fields: tuple[str, ...], consumed: Callable[[bytes], None]) -> Iterator[Record]:
    pa, ipc, _ = pyarrow_modules()
    _hash_file(path, consumed)
    try:
        source = pa.memory_map(str(path), "r")
        try:
            stream = ipc.open_stream(source)
            schema, batches = stream.schema, iter(stream)
        except (OSError, ValueError):  # save_to_disk writes Arrow streams; an Arrow file works too
            file = ipc.open_file(source)
            schema, batches = file.schema, (file.get_batch(i) for i in range(file.num_record_batches))
        _columns(schema, fields, path)
        yield from _rows(iter(batches), fields, path)
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable Arrow file ({str(exc).splitlines()[0][:120]})") from None


def _hash_file(path: Path, consumed: Callable[[bytes], None]) -> None:
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                consumed(chunk)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


READERS = {"jsonl": _jsonl, "parquet": _parquet, "hf_dataset": _arrow}


def read_records(data: Any, path: Path, fields: tuple[str, ...],
                 consumed: Callable[[bytes], None] = lambda raw: None) -> Iterator[Record]:
    """The records of one file of ``data`` (see the module docstring)."""
    return READERS[data.type](path, fields, consumed)


def text_fields(data: Any) -> tuple[str, ...]:
    """The fields a task reads: (source_field, target_field) for pairs, else (field,)."""
    return (data.source_field, data.target_field) if data.pairs else (data.field,)
