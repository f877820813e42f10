"""The ``stackform`` command line. Each sub-command is a module of this package with
``add_arguments(parser)`` and ``run(args) -> int``; add its name to COMMANDS.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import traceback
from typing import Iterator

from stackform.registry import StackformError, import_plugins, printable

# (module, help) in the order `stackform --help` lists them; modules import lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train a spec (zoo name or file): evaluate, checkpoint, sample; --resume continues"),
    "validate": ("validate", "check specs; print file:line:col errors"),
    "list": ("list_cmd", "list registered blocks and their parameters"),
    "inspect": ("inspect_cmd", "per-block parameters and FLOPs, training memory, --diagram; spec or checkpoint"),
    "schema": ("schema", "print the JSON Schema of specs"),
    "eval": ("eval", "loss, perplexity, bits per byte or exact match of a checkpoint on its data or --data"),
    "generate": ("generate", "generate text from a checkpoint (sampling, greedy, beam search)"),
    "attention": ("attention", "attention heatmaps (layers x heads) and an interactive page for a text"),
    "compare": ("compare", "overlay the loss curves of runs, their spec differences in the legend"),
    "import-hf": ("hf", "read a Hugging Face folder (GPT-2, BERT, LLaMA, T5, Qwen3, Gemma, ...: docs/interop.md) into a spec + checkpoint"),
    "export-hf": ("hf", "write a checkpoint as a Hugging Face folder that from_pretrained loads"),
    "merge-lora": ("merge_lora", "fold a LoRA run's adapters into its weights: a plain checkpoint folder"),
    "sweep": ("sweep", "train a grid of spec variants x seeds on one budget; a table with paired tests, a picture"),
    "bench": ("bench", "training-step speed of stackform vs hand-written PyTorch (and peers), side by side"),
}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose error line shows what the user typed with control characters escaped."""

    def error(self, message: str):  # type: ignore[override]
        super().error(printable(message))


class _IntermixedParser(_Parser):
    """A sub-command parser that takes flags between positionals: ``train SPEC --steps 5 KEY=VALUE``."""

    _mixing = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._mixing:  # parse_known_intermixed_args calls back here
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False


def parser() -> argparse.ArgumentParser:
    from stackform.assemble.version import __version__

    top = _Parser(
        prog="stackform", description="Build, train and inspect Transformers from YAML specs.",
    )
    top.add_argument("--version", action="version", version=f"stackform {__version__}")
    top.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_IntermixedParser)
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        mod = importlib.import_module(f"stackform.assemble.cli.{module}")
        mod.add_arguments(command)
        command.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                             help="import MODULE before the command runs (your own blocks; you trust its code): "
                                  "a checkpoint whose spec lists plugins: needs it (repeatable)")
        command.set_defaults(_run=mod.run)
    return top


def _import_plugins(modules: list[str]) -> None:
    """``--plugin MODULE``: import each by its dotted name (never a path); one error line if it fails."""
    for module in modules:
        try:
            import_plugins([module])
        except StackformError as exc:
            raise StackformError(f"--plugin {module}: {exc}") from None


@contextlib.contextmanager
def _current_folder_off_path() -> Iterator[None]:
    """Take the current folder off ``sys.path`` while the command runs (put back after, for callers
    in the same process). torch imports optional modules lazily (triton, tabulate, onnx, ...): a
    ``triton.py`` beside a downloaded model must not be one of them. ``--plugin NAME`` and a spec's
    ``plugins:`` still find ``./NAME.py``: registry.import_plugins imports that one file by path."""
    try:
        here = os.getcwd()
        removed = [(i, p) for i, p in enumerate(sys.path) if os.path.abspath(p or os.curdir) == here]
    except OSError:  # the current folder was deleted: nothing there to import
        removed = []
    for i, _ in reversed(removed):
        del sys.path[i]
    try:
        yield
    finally:
        for i, entry in removed:
            sys.path.insert(min(i, len(sys.path)), entry)


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # outside the training loop a SIGTERM stops like Ctrl-C: exit 130


@contextlib.contextmanager
def _interrupts_exit_130() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt as SIGINT does, so that every interrupt, at any moment (a
    second one during the final save too), ends in ``interrupted`` and exit status 130, not 143."""
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _pipe_safe_output() -> Iterator[None]:
    """stdout and stderr that go quiet, instead of raising, once their reader is gone
    (``stackform train ... | head -1``): the command carries on and saves its files."""
    from stackform.assemble.train.console import PipeSafe

    saved = sys.stdout, sys.stderr
    for stream in saved:  # a name that is not UTF-8 (surrogate-escaped argv) prints as \udcff, never crashes
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors="backslashreplace")
    sys.stdout, sys.stderr = PipeSafe.wrap(sys.stdout), PipeSafe.wrap(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and return 2 (tracebacks only with --debug); an
    interrupt (Ctrl-C, SIGTERM) returns 130."""
    with _interrupts_exit_130(), _pipe_safe_output(), _current_folder_off_path():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    debug = False
    try:
        args = parser().parse_args(argv)
        debug = args.debug
        if not getattr(args, "_run", None):
            parser().print_help()
            return 2
        _import_plugins(args.plugin)
        return int(args._run(args) or 0)
    except StackformError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {printable(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a path the system refuses (too long, through a file, no permission): one line
        if debug:
            traceback.print_exc()
        where = f"{os.fsdecode(exc.filename)}: " if exc.filename else ""
        print(f"error: {printable(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 2
