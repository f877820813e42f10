"""``stackform validate SPEC [SPEC ...] [-o key=value ...]``."""

from __future__ import annotations

import argparse
import sys

from stackform.registry import StackformError, printable
from stackform.specs import SpecError, load_spec
from stackform.specs.errors import one_line


def _training_problems(spec, name: str, overrides: list[str], force_size: bool) -> list[tuple[str, str]]:
    """What ``train`` would refuse before its first step: the device, token ids, memory (one line each)."""
    from stackform.assemble.train.device import resolve_device
    from stackform.assemble.trainable import check_trainable, where_of

    from stackform.assemble.tokenizers import resolve_paths

    where = where_of(name, overrides)
    spec = resolve_paths(spec, name)  # a tokenizer path or init_from is relative to the spec file
    try:
        device = resolve_device(spec.train.device)
    except StackformError as exc:
        return [(where("train.device").rstrip(": "), str(exc))]
    return check_trainable(spec, device, where, force_size)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", metavar="SPEC", help="spec files or zoo names")
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)
    p.add_argument("--force-size", action="store_true",
                   help="skip the check that one training step fits this machine's memory")


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
        problems = _training_problems(spec, name, overrides, args.force_size)
        for key, message in problems:
            print(printable(one_line(f"{key}: {message}" if key else message)), file=sys.stderr)
        if problems:
            failed += 1
            continue
        print(printable(f"{name}: ok ({spec.name}, {spec.model.kind})"))
    return 2 if failed else 0
