"""``stackform schema [--markdown] [--out FILE]``: the JSON Schema (or field reference) of specs."""

from __future__ import annotations

import argparse

from stackform.registry import StackformError, printable
from stackform.specs import schema_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="write to this file instead of standard output")
    p.add_argument("--markdown", action="store_true", help="the field reference as Markdown (docs/specs.md)")


def run(args: argparse.Namespace) -> int:
    from stackform.specs.reference import markdown

    text = markdown() if args.markdown else schema_text()
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise StackformError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
        print(printable(f"wrote {args.out}"))
    else:
        print(text, end="")
    return 0
