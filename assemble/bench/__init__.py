"""Side-by-side benchmarks: stackform against a hand-written PyTorch reference and peers.

Run with ``stackform bench`` (or ``python -m stackform.assemble bench``). Nothing here
is imported by the library itself.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

import torch

from stackform.registry import StackformError


def _int_at_least(minimum: int, rule: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value}: must be {rule}")
        return value

    return parse


positive_int = _int_at_least(1, "at least 1")  # argparse types: errors become one usage line
nonnegative_int = _int_at_least(0, "0 or more")


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: must be a positive number")
    return value


def device_of(name: str) -> torch.device:
    """``--device``: checked like ``train.device`` (a one-line error when CUDA is missing)."""
    from stackform.assemble.train.device import resolve_device

    try:
        return resolve_device(name)
    except StackformError as exc:
        raise StackformError(str(exc).replace("train.device:", "--device:")) from None


def run_script(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a benchmark script's ``main``: user errors print one line and return 2."""
    try:
        return int(main(argv) or 0)
    except StackformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
