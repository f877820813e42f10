"""EvalError: an evaluation that cannot run as asked (a flag, a model kind); the message names it."""

from __future__ import annotations

from stackform.registry import StackformError


class EvalError(StackformError):
    """A flag or a model that evaluation cannot use: the message names it."""
