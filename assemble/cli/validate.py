"""``stackform validate SPEC [SPEC ...] [-o key=value ...]``."""

from __future__ import annotations

import argparse
import sys

from stackform.registry import printable
from stackform.specs import SpecError, load_spec


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", metavar="SPEC", help="spec files or zoo names")
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    specs = [s for s in args.specs if "=" not in s]
    overrides = [s for s in args.specs if "=" in s] + args.overrides
    failed = 0
    for name in specs:
        try:
            spec = load_spec(name, overrides)
        except SpecError as exc:
            failed += 1
            for issue in exc.issues:
                print(printable(issue), file=sys.stderr)
            continue
        print(printable(f"{name}: ok ({spec.name}, {spec.model.kind})"))
    return 2 if failed else 0
