"""DataError: training data that cannot be read or does not fit the spec."""

from __future__ import annotations

from stackform.registry import StackformError


class DataError(StackformError):
    """Unreadable, malformed or too-small training data; the message names the file (and line)."""
