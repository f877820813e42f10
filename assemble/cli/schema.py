"""``stackform schema [--out FILE]``: the JSON Schema of specs."""

from __future__ import annotations

import argparse

from stackform.specs import schema_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="write to this file instead of standard output")


def run(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0
