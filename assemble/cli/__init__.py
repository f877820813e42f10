"""The ``stackform`` command line. Each sub-command is a module of this package with
``add_arguments(parser)`` and ``run(args) -> int``; add its name to COMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from stackform.registry import StackformError, import_plugins

# (module, help) in the order `stackform --help` lists them; modules import lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train a spec (zoo name or file): evaluate, checkpoint, sample; --resume continues"),
    "validate": ("validate", "check specs; print file:line:col errors"),
    "list": ("list_cmd", "list registered blocks and their parameters"),
    "inspect": ("inspect_cmd", "per-block parameters and FLOPs, training memory, --diagram; spec or checkpoint"),
    "schema": ("schema", "print the JSON Schema of specs"),
    "generate": ("generate", "generate text from a checkpoint (sampling, greedy, beam search)"),
    "attention": ("attention", "attention heatmaps (layers x heads) and an interactive page for a text"),
    "compare": ("compare", "overlay the loss curves of runs, their spec differences in the legend"),
    "import-hf": ("hf", "read a Hugging Face folder (GPT-2, BERT, LLaMA, T5, Marian) into a spec + checkpoint"),
    "export-hf": ("hf", "write a checkpoint as a Hugging Face folder that from_pretrained loads"),
    "sweep": ("sweep", "train a grid of spec variants x seeds on one budget; a table with paired tests, a picture"),
    "bench": ("bench", "training-step speed of stackform vs hand-written PyTorch (and peers), side by side"),
}


class _IntermixedParser(argparse.ArgumentParser):
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

    top = argparse.ArgumentParser(
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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and return 2 (tracebacks only with --debug)."""
    args = parser().parse_args(argv)
    if not getattr(args, "_run", None):
        parser().print_help()
        return 2
    # The current folder is importable, last (it never shadows an installed module), as under
    # `python -m`: `plugins: [my_blocks]` and `--plugin my_blocks` find ./my_blocks.py.
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        _import_plugins(args.plugin)
        return int(args._run(args) or 0)
    except StackformError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}" if "\n" not in str(exc) else str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
