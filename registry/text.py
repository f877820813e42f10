"""Printing a string the user (or a downloaded file) chose: control characters escaped."""

from __future__ import annotations

import unicodedata

# Unicode bidirectional overrides and isolates reorder what a terminal shows ("Trojan source").
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI


def printable(text: object, keep: str = "") -> str:
    """``text`` as a string safe to print on a terminal: control characters (C0, DEL, C1: the
    escape sequences that move the cursor, retitle the window or rewrite the screen), lone
    surrogates (undecodable file-name bytes) and bidi overrides become ``\\x1b``-style escapes,
    as ``repr`` writes them. Characters in ``keep`` (e.g. ``"\\n"`` for a multi-line text) stay."""
    text = str(text)
    if text.isprintable() and not any(ch in _BIDI for ch in text):
        return text  # the common case: nothing to do
    return "".join(_escape(ch) if _unsafe(ch) and ch not in keep else ch for ch in text)
