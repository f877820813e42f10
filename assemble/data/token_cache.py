"""The token cache: user text tokenized once into ``train.bin`` and ``val.bin`` beside a
``meta.json`` in ``$STACKFORM_CACHE/tokens/<key>``, then memory-mapped.

The key is a hash of the files' contents (SHA-256, streamed), the eos id, the validation
fraction, the token dtype and the cache format: a file changed in place, even one that keeps
its size and modification time, gets a new entry. An entry is built in a temporary folder and
renamed into place, so stackform never leaves a half-written one; an entry that does not agree
with its ``meta.json`` (truncated, another dtype, damaged metadata, ids above eos) is refused in
one line that says to delete it, and nothing in the cache is changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .errors import DataError
from .text import read_utf8_chunks
from .tokens import SplitWriter, TokenSplit, block_size, bytes_to_tokens, token_dtype

CACHE_FORMAT = 2
HASH_CHUNK = 1 << 22  # bytes read at a time while hashing
MAX_META = 64 << 20  # bytes of meta.json (its file list) read at most
SCAN_CHUNK = 1 << 24  # tokens checked at a time


def cache_root() -> Path:
    """``$STACKFORM_CACHE``, else ``~/.cache/stackform``."""
    env = os.environ.get("STACKFORM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "stackform"


def file_digest(path: Path) -> bytes:
    """SHA-256 of the bytes of ``path``, read in chunks (a DataError if it cannot be read)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return digest.digest()


# reads one file: yields the UTF-8 bytes of its documents, None after each; passes raw bytes to ``consumed``
Reader = Callable[[Path, Callable[[bytes], None]], Iterator["bytes | None"]]


def text_reader(path: Path, consumed: Callable[[bytes], None]) -> Iterator[bytes | None]:
    """A text file is one document."""
    for chunk in read_utf8_chunks(path):
        consumed(chunk)
        yield chunk
    yield None


def progress_bar(total: int, source: str) -> Any:
    """A tqdm bar of the bytes read while tokenizing, on a terminal only (STACKFORM_NO_BAR hides it)."""
    from tqdm.auto import tqdm

    off = bool(os.environ.get("STACKFORM_NO_BAR")) or not sys.stderr.isatty()
    return tqdm(total=total, unit="B", unit_scale=True, desc=f"tokenizing {source}"[:60], leave=False,
                disable=off, file=sys.stderr)


def content_key(digests: list[bytes], eos_id: int, val_fraction: float, dtype: type, reader_key: str = "") -> str:
    """The cache folder name of files with these contents (in this order), read and split this way."""
    fields = {"reader": reader_key} if reader_key else {}  # plain text keeps the keys it always had
    blob = json.dumps({"format": CACHE_FORMAT, "files": [d.hex() for d in digests], "eos": eos_id,
                       "val": val_fraction, "dtype": np.dtype(dtype).name, **fields}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _damaged(folder: Path, source: str, why: str) -> DataError:
    return DataError(f"{folder}: a damaged token cache entry ({why}); delete this folder and it is "
                     f"rebuilt from {source}")


def _read_meta(folder: Path, source: str) -> dict[str, Any]:
    path = folder / "meta.json"
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise _damaged(folder, source, "meta.json is not a file")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_META + 1)
    except OSError as exc:
        raise _damaged(folder, source, f"meta.json: {exc.strerror or exc}") from None
    if len(raw) > MAX_META:
        raise _damaged(folder, source, f"meta.json is larger than {MAX_META >> 20} MiB")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _damaged(folder, source, "meta.json is not UTF-8") from None
    except RecursionError:
        raise _damaged(folder, source, "meta.json is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4300 digits
        raise _damaged(folder, source, f"meta.json is not JSON: {str(exc).splitlines()[0][:80]}") from None
    if not isinstance(meta, dict):
        raise _damaged(folder, source, "meta.json is not a JSON object")
    return meta


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62


def _open(folder: Path, dtype: type, eos_id: int, source: str, max_id: int = 255) -> TokenSplit:
    """The memory-mapped splits of a cache entry, checked against its meta.json (ids up to
    ``max_id`` or ``eos_id``: the byte ids, or a vocabulary tokenizer's)."""
    meta = _read_meta(folder, source)
    name = np.dtype(dtype).name
    if meta.get("format") != CACHE_FORMAT or isinstance(meta.get("format"), bool):
        raise _damaged(folder, source, f"format {str(meta.get('format'))[:20]!r}, expected {CACHE_FORMAT}")
    if meta.get("dtype") != name:
        raise _damaged(folder, source, f"dtype {str(meta.get('dtype'))[:20]!r}, expected {name!r}")
    arrays = []
    for split in ("train", "val"):
        n = meta.get(split)
        if not _whole(n):
            raise _damaged(folder, source, f"'{split}' is {str(n)[:20]!r}, not a token count")
        path, need = folder / f"{split}.bin", n * np.dtype(dtype).itemsize
        try:
            st = os.stat(path)
        except OSError as exc:
            raise _damaged(folder, source, f"{split}.bin: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode) or st.st_size != need:
            size = f"{st.st_size} bytes" if stat.S_ISREG(st.st_mode) else "not a file"
            raise _damaged(folder, source, f"{split}.bin is {size}, meta.json says {n} {name} tokens ({need} bytes)")
        try:
            array = np.memmap(path, dtype=dtype, mode="r", shape=(n,)) if n else np.zeros(0, dtype)
        except (OSError, ValueError) as exc:
            raise _damaged(folder, source, f"{split}.bin: {exc}") from None
        top = max((int(array[i:i + SCAN_CHUNK].max()) for i in range(0, n, SCAN_CHUNK)), default=0)
        if top > max(max_id, eos_id):
            raise _damaged(folder, source, f"{split}.bin holds id {top}, above the tokenizer's ids and eos "
                                           f"({max(max_id, eos_id)})")
        arrays.append(array)
    return TokenSplit(arrays[0], arrays[1], source)


def _write(folder: Path, files: list[Path], eos_id: int, val_fraction: float, dtype: type,
           reader: Reader = text_reader, source: str = "") -> list[bytes]:
    """Tokenize ``files`` into ``folder``; the SHA-256 digests of the bytes actually read."""
    total = sum(p.stat().st_size + 1 for p in files)
    bar = progress_bar(total, source)
    counts = {"train": 0, "val": 0}
    digests = []
    with open(folder / "train.bin", "wb") as train_file, open(folder / "val.bin", "wb") as val_file:
        def sink(name: str, handle) -> Callable[[np.ndarray], None]:
            def write(piece: np.ndarray) -> None:
                handle.write(piece.tobytes())
                counts[name] += piece.size
            return write

        writer = SplitWriter(block_size(total), val_fraction, sink("train", train_file), sink("val", val_file))
        eos = np.array([eos_id], dtype=dtype)
        for path in files:
            digest = hashlib.sha256()

            def consumed(raw: bytes) -> None:
                digest.update(raw)
                bar.update(len(raw))

            try:
                for piece in reader(path, consumed):
                    writer.write(eos if piece is None else bytes_to_tokens(piece, dtype))
            except BaseException:
                bar.close()
                raise
            digests.append(digest.digest())
    bar.close()
    meta = {"format": CACHE_FORMAT, "dtype": np.dtype(dtype).name, **counts, "eos": eos_id,
            "files": [str(p) for p in files]}
    (folder / "meta.json").write_text(json.dumps(meta))
    return digests


def _build(tokens: Path, files: list[Path], eos_id: int, val_fraction: float, dtype: type,
           reader: Reader = text_reader, reader_key: str = "", source: str = "") -> Path:
    """A new cache entry (a temporary folder renamed into place); its path."""
    try:
        tokens.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=tokens))
    except OSError as exc:
        raise DataError(f"{tokens}: cannot write the token cache ({exc.strerror}); set STACKFORM_CACHE") from None
    try:
        try:
            digests = _write(tmp, files, eos_id, val_fraction, dtype, reader, source)
        except OSError as exc:  # e.g. a full disk
            raise DataError(f"{tokens}: cannot write the token cache ({exc.strerror or exc}); "
                            "free space or set STACKFORM_CACHE") from None
        folder = tokens / content_key(digests, eos_id, val_fraction, dtype, reader_key)  # of what was read
        try:
            os.replace(tmp, folder)
        except OSError as exc:
            if not os.path.isdir(folder):  # not another process finishing first
                raise DataError(f"{folder}: cannot write the token cache ({exc.strerror or exc})") from None
        return folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached_split(files: list[Path], eos_id: int, val_fraction: float, source: str,
                 reader: Reader = text_reader, reader_key: str = "") -> TokenSplit:
    """Tokenize ``files`` once into the cache, keyed by their contents (and ``reader_key``, which
    names how ``reader`` reads them); memory-map the entry."""
    dtype = token_dtype(eos_id)
    tokens = cache_root() / "tokens"
    folder = tokens / content_key([file_digest(p) for p in files], eos_id, val_fraction, dtype, reader_key)
    if not os.path.lexists(folder):
        folder = _build(tokens, files, eos_id, val_fraction, dtype, reader, reader_key, source)
    return _open(folder, dtype, eos_id, source)
