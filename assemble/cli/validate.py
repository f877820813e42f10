"""``stackform validate SPEC [SPEC ...] [KEY=VALUE ...] [--print] [--skip-data]``: every problem, in one pass.

It runs what ``train`` checks before its first step (the spec, its blocks and cross-field rules,
the device and precision, token ids against the tokenizer, memory, and the data, read as train
reads it) and prints every problem found, one ``file:line:col: key: message`` line each.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from stackform.registry import StackformError, printable
from stackform.specs.errors import one_line
from stackform.specs.every_issue import every_issue


def _training_problems(spec, name: str, overrides: list[str], force_size: bool,
                       data: bool) -> list[tuple[str, str]]:
    """What ``train`` would refuse before its first step: device, precision, token ids, memory, data."""
    from stackform.assemble.train.device import resolve_device, resolve_precision
    from stackform.assemble.trainable import check_trainable, where_of

    from stackform.assemble.tokenizers import resolve_paths

    where = where_of(name, overrides)
    spec = resolve_paths(spec, name)  # a tokenizer path or init_from is relative to the spec file
    try:
        device = resolve_device(spec.train.device)
    except StackformError as exc:
        return [(where("train.device").rstrip(": "), str(exc))]
    problems = []
    try:
        resolve_precision(spec.train.precision, device)
    except StackformError as exc:
        problems.append((where("train.precision").rstrip(": "), str(exc)))
    problems += check_trainable(spec, device, where, force_size)
    if data and not problems:
        problems += _data_problems(spec, where)
    return problems


def _data_problems(spec, where) -> list[tuple[str, str]]:
    """The data read as ``train`` reads it (its token cache is kept, so train starts at once)."""
    from stackform.assemble.data import load_task

    try:
        load_task(spec)
    except StackformError as exc:
        return [(where("train.data").rstrip(": "), f"train.data: {str(exc).removeprefix('error: ')}")]
    return []


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", metavar="SPEC", help="spec files or zoo names, then dotted overrides")
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)
    p.add_argument("--force-size", action="store_true",
                   help="skip the check that one training step fits this machine's memory")
    p.add_argument("--print", action="store_true", dest="print_spec",
                   help="print the resolved spec (extends, overrides and defaults applied) as YAML")
    p.add_argument("--skip-data", action="store_true", help="do not read the training data")


def run(args: argparse.Namespace) -> int:
    specs = [s for s in args.specs if "=" not in s]
    overrides = [s for s in args.specs if "=" in s] + args.overrides
    failed = 0
    for name in specs:
        spec, issues = every_issue(name, overrides)
        if issues:
            failed += 1
            for issue in issues:
                print(printable(issue), file=sys.stderr)
            continue
        problems = _training_problems(spec, name, overrides, args.force_size, not args.skip_data)
        for key, message in problems:
            print(printable(one_line(f"{key}: {message}" if key else message)), file=sys.stderr)
        if problems:
            failed += 1
            continue
        if args.print_spec:
            print(printable(f"# {name}: resolved (extends, overrides and defaults applied)"))
            print(printable(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False), keep="\n"), end="")
        else:
            print(printable(f"{name}: ok ({spec.name}, {spec.model.kind})"))
    return 2 if failed else 0
