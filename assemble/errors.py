"""Errors of assembled models and checkpoints (all StackformError: one clear line each)."""

from __future__ import annotations

from stackform.registry import StackformError


class ModelInputError(StackformError, ValueError):
    """Bad arguments to a model call: token ids, shapes, lengths."""


class CheckpointError(StackformError):
    """A checkpoint that cannot be read or does not match its spec."""


class WriteError(StackformError, OSError):
    """A file that could not be written (a full disk, no permission, a folder in its place): one
    line naming it; the file that was there before is unchanged. Also an OSError (``errno`` set)."""
