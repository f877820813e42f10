"""Readable axis labels for byte tokens: printable characters as themselves, the rest escaped."""

from __future__ import annotations

from stackform.assemble.tokenizer import ByteTokenizer

_NAMED = {9: "\\t", 10: "\\n", 13: "\\r", 32: "␣"}


def token_label(token: int, tok: ByteTokenizer) -> str:
    """One token as a short label: 'a', '␣' (space), '\\n', '\\x07', '\\xc3', '<eos>', '<312>'."""
    if token in _NAMED:
        return _NAMED[token]
    if 32 < token < 127:
        return chr(token)
    if 0 <= token < 256:
        return f"\\x{token:02x}"
    for name in ("pad", "bos", "eos", "mask"):
        if token == getattr(tok, f"{name}_id") and (name != "mask" or tok.mask_id != tok.pad_id):
            return f"<{name}>"
    return f"<{token}>"


def token_labels(ids: list[int], tok: ByteTokenizer) -> list[str]:
    """Labels of a sequence; a complete multi-byte UTF-8 character is shown on its first byte
    and its continuation bytes as '·'."""
    if getattr(tok, "kind", "bytes") != "bytes":  # a vocabulary tokenizer labels its own tokens
        return [tok.label(int(i)) for i in ids]
    labels = [token_label(int(i), tok) for i in ids]
    i = 0
    while i < len(ids):
        width = _utf8_width(int(ids[i]))
        chunk = [int(x) for x in ids[i:i + width]]
        if width > 1 and len(chunk) == width and all(0x80 <= b < 0xC0 for b in chunk[1:]):
            labels[i] = bytes(chunk).decode("utf-8", errors="replace")
            labels[i + 1:i + width] = ["·"] * (width - 1)
            i += width
        else:
            i += 1
    return labels


def _utf8_width(lead: int) -> int:
    if 0xC2 <= lead < 0xE0:
        return 2
    if 0xE0 <= lead < 0xF0:
        return 3
    if 0xF0 <= lead < 0xF5:
        return 4
    return 1
