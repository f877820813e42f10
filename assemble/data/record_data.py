"""``train.data`` of records (jsonl, parquet, hf_dataset) as a token split or as seq2seq pairs.

Text: each record's ``field`` is one document (followed by eos), streamed through the token cache,
so a folder of many files can be larger than memory. Pairs: ``source_field`` and ``target_field``
of each record, split like TSV pairs (an evenly spread ``val_fraction`` of the records).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import DataError
from .records import read_records, record_files, text_fields
from .token_cache import cached_split
from .tokens import TokenSplit, is_val_block

RECORD_TYPES = ("jsonl", "parquet", "hf_dataset")
LOOKS_LIKE_RECORDS = {".jsonl": "jsonl", ".parquet": "parquet", ".arrow": "hf_dataset"}


def _utf8(text: str, where: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate (a JSON "\\ud800")
        raise DataError(f"{where}: the text holds {text[exc.start]!r}, not encodable as UTF-8") from None


def record_split(data: Any, eos_id: int) -> TokenSplit:
    """The train/validation token streams of a text task's record data (cached, memory-mapped)."""
    fields = text_fields(data)

    def documents(path: Path, consumed: Callable[[bytes], None]) -> Iterator[bytes | None]:
        for where, (text,) in read_records(data, path, fields, consumed):
            yield _utf8(text, where)
            yield None

    key = json.dumps([data.type, data.field, getattr(data, "split", None)])
    return cached_split(record_files(data), eos_id, data.val_fraction, data.path, documents, key)


def record_pairs(data: Any, max_len: int | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, val) pairs of seq2seq record data; a pair longer than ``max_len`` names its record."""
    rows: list[tuple[str, str]] = []
    for path in record_files(data):
        for where, (src, tgt) in read_records(data, path, text_fields(data)):
            if not src:
                raise DataError(f"{where}: field '{data.source_field}' is empty")
            need = max(len(_utf8(src, where)), len(_utf8(tgt, where)) + 1)  # the target gets bos / eos
            if max_len is not None and need > max_len:
                raise DataError(f"{where}: the pair needs {need} positions (target + bos/eos); "
                                f"model.max_len is {max_len}")
            rows.append((src, tgt))
    if len(rows) < 2:
        raise DataError(f"{data.path}: needs at least 2 pairs (one for training, one for validation), "
                        f"found {len(rows)}")
    train = [pair for i, pair in enumerate(rows) if not is_val_block(i, data.val_fraction)]
    val = [pair for i, pair in enumerate(rows) if is_val_block(i, data.val_fraction)]
    if not val:
        val, train = train[-1:], train[:-1]
    return train, val


def refuse_records_as_text(files: list[Path], given: str) -> None:
    """A ``.jsonl`` (Parquet, Arrow) file given as ``type: text`` would train on its raw bytes: refuse."""
    for path in files:
        kind = LOOKS_LIKE_RECORDS.get(path.suffix.lower())
        if kind:
            where = str(path) if str(path) != given else given
            raise DataError(f"{where}: a {path.suffix} file given as type: text would train on its raw "
                            f"{'JSON' if kind == 'jsonl' else 'bytes'}; use data: {{type: {kind}, path: {given}, "
                            "field: text}")
