"""The error of the picture-making functions and commands (a StackformError: one clear line)."""

from __future__ import annotations

from stackform.registry import StackformError


class VizError(StackformError, ValueError):
    """Bad input to an attention map, diagram, run comparison or their commands."""
