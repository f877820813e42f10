"""``stackform train SPEC [KEY=VALUE ...] [--resume RUN_DIR] [--out-dir DIR] [--overwrite] [--nproc N]``."""

from __future__ import annotations

import argparse
import json

from stackform.registry import StackformError

EPILOG = """examples:
  stackform train gpt-tiny                                   # zoo name or path; trains, evaluates, saves, samples
  stackform train my.yaml train.steps=500 model.d_model=192  # dotted overrides
  stackform train --resume runs/my train.steps=4000          # continue exactly where it stopped
  stackform train my.yaml --threads 1                        # one CPU thread: often fastest on a busy machine
  stackform train my.yaml --nproc 4                          # 4 processes (torchrun), DDP; docs/distributed.md"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("args", nargs="*", metavar="SPEC [KEY=VALUE ...]",
                   help="a spec file or zoo name (optional with --resume), then dotted overrides")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in this folder from its last checkpoint")
    p.add_argument("--out-dir", metavar="DIR", help="where the run's files go (default: runs/<spec name>)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the output folder")
    p.add_argument("--device", metavar="DEVICE", help="shortcut for train.device=DEVICE (auto, cpu, cuda, cuda:1)")
    p.add_argument("--steps", type=int, metavar="N", help="shortcut for train.steps=N")
    p.add_argument("--quiet", action="store_true", help="no progress or summary output")
    p.add_argument("--force-size", action="store_true",
                   help="train even when a step is estimated not to fit this machine's memory")
    p.add_argument("--threads", type=_threads, metavar="N",
                   help="torch CPU threads (default: one per core); on a busy machine 1 is often fastest")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train with N processes on this machine: relaunches this command through torchrun")


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from stackform.assemble.train.machine import set_threads
    from stackform.assemble.train.run import train

    set_threads(args.threads)

    specs = [a for a in args.args if "=" not in a]
    overrides = [a for a in args.args if "=" in a]
    if args.device is not None:
        from stackform.assemble.train.device import resolve_device

        resolve_device(args.device, "--device")  # before any folder is made; the string as given, not YAML
        overrides.append(f"train.device={json.dumps(args.device)}")
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if len(specs) > 1:
        raise StackformError(f"stackform train: one spec at a time, got {len(specs)}: {', '.join(specs)}")
    if not specs and not args.resume:
        raise StackformError("stackform train: give a spec (file or zoo name, e.g. gpt-tiny) or --resume RUN_DIR")
    if args.nproc is not None and args.nproc != 1:
        return _launch(args, specs[0] if specs else None, overrides)
    result = train(specs[0] if specs else None, overrides, out_dir=args.out_dir, resume=args.resume,
                   overwrite=args.overwrite, quiet=args.quiet, allow_large=args.force_size)
    return 130 if result.stopped == "interrupted" else 0


def _launch(args: argparse.Namespace, spec: str | None, overrides: list[str]) -> int:
    """``--nproc N``: check what can be checked here, then run this command again under torchrun."""
    from stackform.assemble.train.launch import check_launch, launch
    from stackform.assemble.train.run import resolve_spec, run_folder

    check_launch(args.nproc, None)  # a bad N needs no spec to say so
    resolved = resolve_spec(spec, overrides, args.resume)  # a bad spec, resume folder or override
    check_launch(args.nproc, resolved)  # a spec that does not fit N processes
    from stackform.assemble.train.device import resolve_device
    from stackform.assemble.trainable import require_trainable, where_of

    require_trainable(resolved, resolve_device(resolved.train.device), where_of(spec, overrides), args.force_size)
    run_folder(resolved, args.out_dir, args.resume, args.overwrite)  # another run's folder
    argv = list(args.args)
    for flag, value in (("--resume", args.resume), ("--out-dir", args.out_dir), ("--device", args.device),
                        ("--steps", args.steps), ("--threads", args.threads)):
        if value is not None:
            argv += [flag, str(value)]
    for module in args.plugin:
        argv += ["--plugin", module]
    argv += [flag for flag, on in (("--overwrite", args.overwrite), ("--quiet", args.quiet),
                                   ("--force-size", args.force_size),
                                   ("--debug", getattr(args, "debug", False))) if on]
    return launch(args.nproc, argv)
