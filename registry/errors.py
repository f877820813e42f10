"""The one exception family of stackform: every user-facing error is a StackformError."""

from __future__ import annotations


class StackformError(Exception):
    """An error caused by the user's input (spec, override, checkpoint, flag, data).

    Its message is one line that names the place and the problem; the CLI prints
    it as it is and exits with code 2.
    """


class RegistryError(StackformError):
    """A registration or lookup problem (duplicate name, unknown block or kind)."""
