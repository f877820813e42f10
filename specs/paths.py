"""Paths in a spec file are relative to that file: ``train.data.path: corpus.txt`` beside the spec.

A dotted override on the command line (``train.data.path=corpus.txt``) is applied after this, so
it stays relative to the current folder, as a shell user expects. A dict or Spec given in Python
keeps its paths as they are (relative to the current folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from .source import Source

SPEC_RELATIVE_PATHS: tuple[tuple[str, ...], ...] = (("train", "data", "path"),)  # keys that hold a file path


def resolve_relative_paths(src: Source, folder: Path) -> None:
    """Make each relative path of ``SPEC_RELATIVE_PATHS`` in ``src`` absolute, from ``folder`` (in place)."""
    for keys in SPEC_RELATIVE_PATHS:
        parent = src.data
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        value = parent.get(keys[-1]) if isinstance(parent, dict) else None
        if not isinstance(value, str) or not value or value.startswith("~") or os.path.isabs(value):
            continue
        parent[keys[-1]] = os.path.abspath(os.path.join(folder, value))
