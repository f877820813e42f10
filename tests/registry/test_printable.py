"""``printable``: every code point a terminal would act on comes out escaped; the rest unchanged."""

from __future__ import annotations

import unicodedata

from stackform.registry import printable

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_every_control_character_is_escaped_and_nothing_else_changes():
    unsafe = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) in ("Cc", "Cs") or chr(c) in BIDI]
    skip = set(unsafe)
    safe = "".join(chr(c) for c in range(0x110000) if chr(c) not in skip)
    assert printable(safe) == safe
    for ch in unsafe:
        shown = printable(f"a{ch}b")
        assert shown.startswith("a\\") and shown.endswith("b") and shown[1:-1].isascii() and shown[1:-1].isprintable()


def test_escapes_read_like_repr_and_keep_what_is_asked():
    assert printable("a\x1b[2Jb\x07\x9b\n\t\udcff\u202e") == "a\\x1b[2Jb\\x07\\x9b\\n\\t\\udcff\\u202e"
    assert printable("line 1\nline 2\tx\x1b", keep="\n\t") == "line 1\nline 2\tx\\x1b"
    assert printable(3) == "3" and printable("héllo ✓ 日本") == "héllo ✓ 日本"
