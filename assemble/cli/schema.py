"""``stackform schema [--markdown] [--out FILE_OR_FOLDER] [--where]``: the JSON Schema (or field reference) of specs."""

from __future__ import annotations

import argparse
import os
from importlib import resources
from pathlib import Path

from stackform.registry import StackformError, printable
from stackform.specs import schema_text
from stackform.specs.schema import SCHEMA_FILE, modeline


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help=f"write to this file (or to {SCHEMA_FILE} in this folder) instead of standard "
                                 "output, and print the first line that points a spec beside it at it")
    p.add_argument("--markdown", action="store_true", help="the field reference as Markdown (docs/specs.md)")
    p.add_argument("--where", action="store_true",
                   help="print the first line that points a spec in any folder at the installed schema")


def installed_schema() -> Path:
    """The schema file shipped with the installed package (kept current by its tests)."""
    return Path(str(resources.files("stackform.specs") / "schema" / SCHEMA_FILE)).resolve()


def run(args: argparse.Namespace) -> int:
    from stackform.specs.reference import markdown

    if args.where:
        path = installed_schema()
        if not path.is_file():
            raise StackformError(f"{path}: the installed schema is missing; write one with --out FOLDER")
        print(printable(modeline(path.as_uri())))
        return 0
    text = markdown() if args.markdown else schema_text()
    if not args.out:
        print(text, end="")
        return 0
    out = Path(args.out)
    if out.is_dir() or args.out.endswith(("/", os.sep)):
        out = out / SCHEMA_FILE
    try:
        with open(out, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise StackformError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    print(printable(f"wrote {out}"))
    if not args.markdown:
        print("the first line of a spec beside it (blocks of your own: run this with --plugin MODULE):")
        print(printable(modeline(out.name)))
    return 0
