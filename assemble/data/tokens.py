"""Token streams split into train and validation, in memory or in memory-mapped files.

A corpus becomes one stream of byte tokens, each document followed by ``eos``. The
stream is cut into blocks (4096 tokens, smaller for tiny corpora); an evenly spread
``val_fraction`` of the blocks is the validation split, the rest is the training split.
User text is tokenized once into ``train.bin``/``val.bin`` (uint16) in a cache folder
keyed by the files' paths, sizes and modification times, then memory-mapped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .errors import DataError
from .text import read_utf8_chunks

CACHE_FORMAT = 1
TOKEN_DTYPE = np.uint16


@dataclass
class TokenSplit:
    """The training and validation token streams of a corpus (uint16 arrays or memmaps)."""

    train: np.ndarray
    val: np.ndarray
    source: str


def block_size(total_tokens: int) -> int:
    """Split granularity: 4096 tokens, or about 1/50 of a small corpus (at least 16)."""
    return max(16, min(4096, total_tokens // 50))


def is_val_block(index: int, fraction: float) -> bool:
    """Block ``index`` belongs to validation: exactly ``fraction`` of the blocks, evenly spread."""
    return int((index + 1) * fraction) > int(index * fraction)


class SplitWriter:
    """Routes a stream of token arrays, block by block, to a train sink and a val sink."""

    def __init__(self, block: int, fraction: float, train: Callable[[np.ndarray], object],
                 val: Callable[[np.ndarray], object]):
        self.block, self.fraction, self.sinks = block, fraction, (train, val)
        self.position = 0

    def write(self, tokens: np.ndarray) -> None:
        while tokens.size:
            take = self.block - self.position % self.block
            piece, tokens = tokens[:take], tokens[take:]
            self.sinks[is_val_block(self.position // self.block, self.fraction)](piece)
            self.position += piece.size


def _bytes_to_tokens(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).astype(TOKEN_DTYPE)


def split_documents(documents: Iterable[bytes], eos_id: int, val_fraction: float, source: str) -> TokenSplit:
    """In-memory split of byte documents (small corpora such as pydoc)."""
    docs = list(documents)
    total = sum(len(d) + 1 for d in docs)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    writer = SplitWriter(block_size(total), val_fraction, train.append, val.append)
    eos = np.array([eos_id], dtype=TOKEN_DTYPE)
    for doc in docs:
        writer.write(_bytes_to_tokens(doc))
        writer.write(eos)
    join = lambda parts: np.concatenate(parts) if parts else np.zeros(0, TOKEN_DTYPE)  # noqa: E731
    return TokenSplit(join(train), join(val), source)


def cache_root() -> Path:
    """``$STACKFORM_CACHE``, else ``~/.cache/stackform``."""
    env = os.environ.get("STACKFORM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "stackform"


def _cache_key(files: list[Path], eos_id: int, val_fraction: float) -> str:
    stats = []
    for path in files:
        st = path.stat()
        stats.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
    blob = json.dumps({"format": CACHE_FORMAT, "files": stats, "eos": eos_id, "val": val_fraction}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _open(folder: Path, source: str) -> TokenSplit:
    meta = json.loads((folder / "meta.json").read_text())
    arrays = []
    for name in ("train", "val"):
        n = meta[name]
        arrays.append(np.memmap(folder / f"{name}.bin", dtype=TOKEN_DTYPE, mode="r", shape=(n,))
                      if n else np.zeros(0, TOKEN_DTYPE))
    return TokenSplit(arrays[0], arrays[1], source)


def _write(folder: Path, files: list[Path], eos_id: int, val_fraction: float) -> None:
    total = sum(p.stat().st_size + 1 for p in files)
    counts = {"train": 0, "val": 0}
    with open(folder / "train.bin", "wb") as train_file, open(folder / "val.bin", "wb") as val_file:
        def sink(name: str, handle) -> Callable[[np.ndarray], None]:
            def write(piece: np.ndarray) -> None:
                handle.write(piece.tobytes())
                counts[name] += piece.size
            return write

        writer = SplitWriter(block_size(total), val_fraction, sink("train", train_file), sink("val", val_file))
        eos = np.array([eos_id], dtype=TOKEN_DTYPE)
        for path in files:
            for chunk in read_utf8_chunks(path):
                writer.write(_bytes_to_tokens(chunk))
            writer.write(eos)
    (folder / "meta.json").write_text(json.dumps({**counts, "files": [str(p) for p in files]}))


def cached_split(files: list[Path], eos_id: int, val_fraction: float, source: str) -> TokenSplit:
    """Tokenize ``files`` once into the cache (atomically: a temp folder, then a rename); memory-map."""
    folder = cache_root() / "tokens" / _cache_key(files, eos_id, val_fraction)
    if not (folder / "meta.json").is_file():
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
        except OSError as exc:
            raise DataError(f"{folder.parent}: cannot write the token cache ({exc.strerror}); set STACKFORM_CACHE") from None
        try:
            _write(tmp, files, eos_id, val_fraction)
            try:
                os.replace(tmp, folder)
            except OSError:  # another process finished first
                if not (folder / "meta.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _open(folder, source)
