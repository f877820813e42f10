"""Text corpora as documents: Python's own ``pydoc_data.topics``, or UTF-8 files of the user."""

from __future__ import annotations

import codecs
import os
from pathlib import Path
from typing import Iterator

from .errors import DataError

READ_CHUNK = 1 << 22  # bytes read at a time from a user file


def pydoc_documents() -> list[bytes]:
    """The English help topics of ``pydoc_data.topics`` (about 466 KB), in sorted key order."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise DataError("builtin 'pydoc': this Python has no pydoc_data module (use data: {type: text, path: ...})")
    return [topics[key].encode("utf-8") for key in sorted(topics)]


def text_files(path: str | os.PathLike) -> list[Path]:
    """``path`` itself, or every regular file below the directory ``path`` (sorted, hidden files skipped)."""
    root = Path(path).expanduser()
    if root.is_file():
        return [root]
    if not root.exists():
        raise DataError(f"{path}: no such file or directory (train.data.path)")
    if not root.is_dir():
        raise DataError(f"{path}: not a regular file or a directory (train.data.path)")
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        hidden = any(p.is_file() for p in root.rglob("*"))
        what = "only hidden files (names starting with '.', which are skipped)" if hidden else "no files"
        raise DataError(f"{path}: the directory holds {what} (train.data.path)")
    return files


def read_utf8_chunks(path: Path) -> Iterator[bytes]:
    """The bytes of ``path`` in chunks, checked to be UTF-8 (a DataError names the byte offset)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    raise DataError(f"{path}: not UTF-8 text (byte offset {offset + exc.start}: {exc.reason})") from None
                offset += len(chunk)
                yield chunk
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}: not UTF-8 text (truncated character at byte {offset + exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
