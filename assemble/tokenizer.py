"""The byte-level tokenizer: 256 byte values, then pad, bos, eos (and mask) ids from the spec."""

from __future__ import annotations

from stackform.specs import ModelSpec

from .errors import ModelInputError


class ByteTokenizer:
    """UTF-8 bytes as token ids 0..255; special ids come from the model spec (default 256, 257, 258).
    Other tokenizers (``stackform.assemble.tokenizers``) offer the same methods."""

    kind = "bytes"

    def __init__(self, pad_id: int = 256, bos_id: int = 257, eos_id: int = 258, mask_id: int | None = None,
                 vocab_size: int = 259):
        if vocab_size < 256:
            raise ModelInputError(f"the byte tokenizer needs vocab_size >= 256, the spec has {vocab_size}")
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.mask_id = mask_id if mask_id is not None else pad_id
        self.vocab_size = vocab_size
        self.special = {pad_id, bos_id, eos_id, self.mask_id}

    @classmethod
    def for_model(cls, model: ModelSpec) -> "ByteTokenizer":
        return cls(
            pad_id=model.pad_id if model.pad_id is not None else 256,
            bos_id=model.bos_id if model.bos_id is not None else 257,
            eos_id=model.eos_id if model.eos_id is not None else 258,
            mask_id=model.mask_id,
            vocab_size=model.vocab_size,
        )

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = list(text.encode("utf-8"))
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def prompt(self, text: str) -> list[int]:
        """The ids a generation starts from: eos (training streams end each document with it) + the text."""
        return [self.eos_id] + self.encode(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def token_bytes(self, vocab_size: int) -> "np.ndarray":
        """Bytes each id stands for ([vocab_size]): 1 for the byte ids, 0 for the special ids (bits per byte)."""
        import numpy as np

        lengths = np.zeros(vocab_size, dtype=np.int64)
        lengths[: min(256, vocab_size)] = 1
        return lengths

    def label(self, token: int) -> str:
        from .viz.tokens import token_label

        return token_label(int(token), self)

    def decode(self, ids: list[int], stop_at_eos: bool = True) -> str:
        out = bytearray()
        for i in ids:
            i = int(i)
            if stop_at_eos and i == self.eos_id:
                break
            if 0 <= i < 256:
                out.append(i)
        return out.decode("utf-8", errors="replace")
