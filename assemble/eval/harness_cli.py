"""``stackform-lm-eval``: lm_eval's command line with the ``stackform`` model registered (harness.py).
Without lm-eval installed it says so in one line, naming the extra."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from . import harness
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    harness.main()
