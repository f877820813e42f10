"""SpecError: one problem in a spec, printed as ``file:line:col: dotted.path: message``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stackform.registry import StackformError


@dataclass(frozen=True)
class Issue:
    """One problem: where it is (file, line, column, dotted path) and what it is."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return one_line(_elide(text))


LONGEST_WORD = 200  # a longer run without spaces (a value echoed back) is shortened in messages


def _elide(text: str) -> str:
    """``text`` with every run of over LONGEST_WORD non-space characters cut to its ends."""
    if len(text) <= LONGEST_WORD:
        return text
    return re.sub(r"\S{%d,}" % (LONGEST_WORD + 1),
                  lambda m: f"{m.group()[:120]}...[{len(m.group())} chars]...{m.group()[-20:]}", text)


def one_line(text: str) -> str:
    """``text`` with control characters and line breaks escaped: one line, no terminal escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


class SpecError(StackformError):
    """A spec that cannot be used. ``issues`` holds every problem found, first one first."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__(str(issues[0]))

    @classmethod
    def at(cls, file: str, message: str, line: int = 0, col: int = 0, path: str = "") -> "SpecError":
        return cls([Issue(file, line, col, path, message)])
