"""What a run shows and records: a tqdm bar on a terminal (plain lines otherwise) and ``metrics.jsonl``."""

from __future__ import annotations

import errno
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from stackform.registry import printable

from ..checkpoint import atomic_write
from ..errors import WriteError
from .metrics_file import read_metrics

# A reader that left (EPIPE), a descriptor closed under us (EBADF), a terminal that went away (EIO).
_GONE = (errno.EPIPE, errno.EBADF, errno.EIO)


class PipeSafe:
    """A text stream that goes quiet, instead of raising, once nobody reads it: ``train ... | head -1``
    closes the pipe after one line, and the run must still train and save. After the first failed
    write its descriptor points to /dev/null, so the interpreter's last flush (and any child process
    that inherits it) writes nowhere instead of failing too."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self.broken = False

    @classmethod
    def wrap(cls, stream: TextIO | None) -> "PipeSafe":
        """``stream`` made pipe-safe (once); a missing stream (started with ``>&-``) writes to /dev/null."""
        if isinstance(stream, PipeSafe):
            return stream
        return cls(stream if stream is not None else open(os.devnull, "w"))

    def _quiet(self) -> None:
        self.broken = True
        try:
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
        except (OSError, ValueError, AttributeError):
            pass  # no descriptor (an in-memory stream): staying quiet is enough

    def _guard(self, call, *args):
        if self.broken:
            return None
        try:
            return call(*args)
        except UnicodeError:  # a text the stream cannot encode is the caller's bug: say so
            raise
        except (BrokenPipeError, ValueError):  # ValueError: the stream object was closed
            self._quiet()
        except OSError as exc:
            if exc.errno not in _GONE:
                raise
            self._quiet()
        return None

    def write(self, text: str) -> int:
        self._guard(self._stream.write, text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def isatty(self) -> bool:
        return not self.broken and bool(self._guard(self._stream.isatty))

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, ...: the wrapped stream's
        return getattr(self._stream, name)


def strict_json(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with NaN and infinite numbers as None: ``null`` in strict JSON, not a bare ``NaN``."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line, appended and flushed as the run goes.
    A value that is not a finite number (a diverged loss, an MLM loss with nothing masked) is ``null``."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        self.records: list[dict[str, Any]] = []
        self.failed = False
        if resume_step is not None and os.path.lexists(path):  # checked before anything is written
            self.records = [strict_json(r) for r in read_metrics(path)  # an older version wrote bare NaN
                            if r["step"] <= resume_step]
        atomic_write(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in self.records).encode())
        try:
            self._handle = open(path, "a")
        except OSError as exc:
            raise self._error(exc) from None

    def write(self, record: dict[str, Any]) -> None:
        record = strict_json(record)
        self.records.append(record)
        try:
            self._handle.write(json.dumps(record, allow_nan=False) + "\n")
            self._handle.flush()
        except OSError as exc:  # a full disk: one line (the last checkpoint is untouched)
            raise self._error(exc) from None

    def _error(self, exc: OSError) -> WriteError:
        self.failed = True
        error = WriteError(f"{self.path}: cannot write ({exc.strerror or type(exc).__name__})")
        error.errno = exc.errno
        return error

    def close(self) -> None:
        try:
            self._handle.close()
        except OSError as exc:  # the records it still held could not be written
            if not self.failed:  # already reported
                raise self._error(exc) from None


def fmt_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


def fmt_ppl(value: float, decimals: int = 2) -> str:
    """A perplexity: fixed-point, or scientific above 1e6 (a diverged run's is up to e^50, 22 digits)."""
    return f"{value:.3e}" if value >= 1e6 else f"{value:.{decimals}f}"


def fmt_metrics(metrics: dict[str, float], extra: tuple[str, ...] = ()) -> str:
    """The known metrics, then the ``extra`` ones (blocks' auxiliary losses) as ``name value``."""
    parts = []
    for key, value in metrics.items():
        if key == "exact_match":
            parts.append(f"exact {100 * value:.1f}%")
        elif key == "tokens_per_s":
            parts.append(f"{value:,.0f} tok/s")
        elif key == "lr":
            parts.append(f"lr {value:.2e}")
        elif key in ("loss", "bpb", "ppl", "unigram_loss", "grad_norm"):
            parts.append(f"{key.replace('_', ' ')} {value:.3f}" if key != "ppl" else f"ppl {fmt_ppl(value)}")
    parts += [f"{key} {metrics[key]:.4g}" for key in extra if key in metrics]
    return "  ".join(parts)


class Console:
    """A tqdm bar (loss, lr, tokens/s) when ``stream`` is a terminal, else one plain line per log step."""

    def __init__(self, total: int, initial: int, quiet: bool = False, stream: TextIO | None = None):
        self.stream = PipeSafe.wrap(stream or sys.stderr)
        self.quiet = quiet
        self.bar = None
        if not quiet and self.stream.isatty() and not os.environ.get("STACKFORM_NO_BAR"):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, file=self.stream, unit="step", dynamic_ncols=True)
        self.total = total
        self.extra: tuple[str, ...] = ()  # auxiliary losses shown after the known metrics

    def step(self, step: int, metrics: dict[str, float] | None, elapsed: float) -> None:
        """Advance to ``step``; with ``metrics`` (a log step) show them."""
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if metrics:
                self.bar.set_postfix_str(fmt_metrics(metrics, self.extra), refresh=False)
        elif metrics and not self.quiet:
            self.line(f"step {step}/{self.total}  {fmt_metrics(metrics, self.extra)}  [{fmt_duration(elapsed)}]")

    def line(self, text: str) -> None:
        """Print one line; user strings in it (paths, names, devices) show with control characters escaped."""
        if self.quiet:
            return
        text = printable(text, keep="\n")
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            try:
                self.bar.close()
            except (OSError, ValueError):  # the bar's last refresh on a stream that went away
                pass
