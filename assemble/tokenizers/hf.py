"""A Hugging Face ``tokenizer.json`` (BPE, WordPiece, Unigram/SentencePiece) through the ``tokenizers``
package: read with bounds, never executed, special ids taken from the model spec."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np

from stackform.registry import StackformError

MAX_TOKENIZER_JSON = 256 << 20  # bytes of a tokenizer.json read at most (LLaMA 3's is 9 MB)
INSTALL = "pip install 'stackform[tokenizers]'"


class TokenizerError(StackformError):
    """A tokenizer that cannot be read, trained or used for this spec (one line: where and why)."""


def hf_tokenizers() -> Any:
    """The ``tokenizers`` module, or one line naming the pip command that installs it."""
    try:
        import tokenizers
    except ImportError:
        raise TokenizerError(f"this needs the Hugging Face 'tokenizers' package: {INSTALL}") from None
    return tokenizers


def read_tokenizer_text(path: str | os.PathLike, what: str = "tokenizer.json") -> str:
    """The UTF-8 text of a tokenizer.json, its size checked before it is read."""
    path = Path(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise TokenizerError(f"{path}: not a regular file; expected a {what}")
        if st.st_size > MAX_TOKENIZER_JSON:
            raise TokenizerError(f"{path}: {st.st_size:,} bytes, more than a {what} may hold "
                                 f"({MAX_TOKENIZER_JSON >> 20} MiB)")
        raw = path.read_bytes()[:MAX_TOKENIZER_JSON + 1]
    except FileNotFoundError:
        raise TokenizerError(f"{path}: no such file (the {what})") from None
    except OSError as exc:
        raise TokenizerError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TokenizerError(f"{path}: not UTF-8 (byte offset {exc.start}); not a {what}") from None


class TextTokenizer:
    """A ``tokenizers.Tokenizer`` with the spec's special ids; the interface of ByteTokenizer."""

    kind = "text"

    def __init__(self, json_text: str, source: str, *, pad_id: int | None = None, bos_id: int | None = None,
                 eos_id: int | None = None, mask_id: int | None = None, template: bool = True):
        hf = hf_tokenizers()
        try:
            self.hf = hf.Tokenizer.from_str(json_text)
        except Exception as exc:  # the Rust parser's error: one line
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise TokenizerError(f"{source}: not a readable tokenizer.json ({reason})") from None
        self.json_text, self.source = json_text, source
        self.template = template  # prompts: the tokenizer's own template (an import), else eos first (ours)
        self.sha256 = hashlib.sha256(json_text.encode("utf-8")).hexdigest()
        self.size = self.hf.get_vocab_size(with_added_tokens=True)
        self.vocab_size = self.size
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.mask_id = mask_id if mask_id is not None else pad_id
        self.special = {i for i in (pad_id, bos_id, eos_id, self.mask_id) if i is not None}
        self.special_tokens = {t.content: i for i, t in self.hf.get_added_tokens_decoder().items() if t.special}
        self._lengths: np.ndarray | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike, template: bool = True, **ids: int | None) -> "TextTokenizer":
        return cls(read_tokenizer_text(path), str(path), template=template, **ids)

    def prompt(self, text: str) -> list[int]:
        """The ids a generation starts from: the tokenizer's template (e.g. LLaMA's <s>) for an imported
        tokenizer, as transformers encodes; eos + the text for a BPE stackform trained (documents
        follow an eos in its training stream)."""
        if not self.template:
            return ([self.eos_id] if self.eos_id is not None else []) + self.encode(text)
        ids = self.hf.encode(text, add_special_tokens=True).ids
        start = self.bos_id if self.bos_id is not None else self.eos_id
        return ids or ([start] if start is not None else [])

    def with_ids(self, **ids: int | None) -> "TextTokenizer":
        """The same vocabulary with these special ids (those of a model spec)."""
        return TextTokenizer(self.json_text, self.source, template=self.template, **ids)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = self.hf.encode(text, add_special_tokens=False).ids
        return ([self.bos_id] if bos and self.bos_id is not None else []) + ids + \
            ([self.eos_id] if eos and self.eos_id is not None else [])

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Many texts at once, on all cores (the Rust side runs them in parallel)."""
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int], stop_at_eos: bool = True) -> str:
        ids = [int(i) for i in ids]
        if stop_at_eos and self.eos_id is not None and self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        ids = [i for i in ids if 0 <= i < self.size and i not in self.special]
        return self.hf.decode(ids, skip_special_tokens=False)

    def label(self, token: int) -> str:
        """One token as a short label: its text, spaces as '␣' and newlines as '\\n'."""
        piece = self.hf.id_to_token(int(token)) if 0 <= int(token) < self.size else None
        if piece is None:
            return f"<{token}>"
        text = self.hf.decode([int(token)], skip_special_tokens=False) or piece
        return text.replace(" ", "␣").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")

    def token_bytes(self, vocab_size: int) -> np.ndarray:
        """UTF-8 bytes each id stands for ([vocab_size], 0 for specials and ids it lacks): bits per byte."""
        if self._lengths is None or len(self._lengths) != vocab_size:
            n = min(self.size, vocab_size)
            byte_level = type(self.hf.decoder).__name__ == "ByteLevel"  # a piece's characters are its bytes
            texts = self.hf.decode_batch([[i] for i in range(n)], skip_special_tokens=True)
            lengths = np.zeros(vocab_size, dtype=np.int64)
            for i, text in enumerate(texts):
                piece = self.hf.id_to_token(i)
                if i in self.special or piece is None:
                    continue
                lengths[i] = len(piece) if byte_level else len(text.encode("utf-8"))
            self._lengths = lengths
        return self._lengths
