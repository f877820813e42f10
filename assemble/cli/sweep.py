"""``stackform sweep FILE [--parallel N] [--plan | --collect] [--out-dir DIR] [--sort KEY] [--group AXIS]``."""

from __future__ import annotations

import argparse
import os
import sys

from stackform.registry import StackformError

EPILOG = """examples:
  stackform sweep specs/sweeps/positions.yaml               # every variant x seed, one after another; then the report
  stackform sweep my-sweep.yaml seeds=5 budget.minutes=2     # dotted overrides of the sweep file
  stackform sweep my-sweep.yaml --parallel 2                # two runs at a time, threads split between them
  stackform sweep my-sweep.yaml --plan > runs.txt           # one `stackform train ...` line per run, for a scheduler
  stackform sweep my-sweep.yaml --collect --sort loss       # the report from the finished run folders
Run it again after an interruption: finished runs are skipped, a half-finished one resumes. docs/sweeps.md"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("file", metavar="FILE", help="the sweep file (YAML: base, axes or zip, seeds, budget, match)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides of the sweep file's own keys: budget.tokens=200000 seeds=2")
    p.add_argument("--parallel", type=int, metavar="N",
                   help="N runs at a time, as processes sharing the cores (default: 1, or one per GPU when several)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--plan", action="store_true", help="print one `stackform train` command per run; train nothing")
    mode.add_argument("--collect", action="store_true", help="only gather the finished runs into the report")
    p.add_argument("--out-dir", metavar="DIR", help="where the run folders and the report go "
                                                    "(default: the file's out_dir, else runs/sweeps/<name>)")
    p.add_argument("--sort", default="file", metavar="KEY", help="rows by: file (order of the file), loss, or an axis")
    p.add_argument("--group", metavar="AXIS", help="one table per value of this axis")
    p.add_argument("--quiet", action="store_true", help="no training output; the report only")


def run(args: argparse.Namespace) -> int:
    from stackform.assemble.sweep.execute import execute, run_status
    from stackform.assemble.sweep.plan import make_plan

    if args.parallel is not None and args.parallel < 1:
        raise StackformError(f"--parallel {args.parallel}: give at least 1 process")
    plan = make_plan(args.file, args.out_dir, args.overrides)  # every run validated before anything trains
    _check_axes(plan, args)
    if args.plan:
        lines = []
        for run_ in plan.runs:
            status = run_status(run_)
            command = plan.resume_command(run_) if status == "partial" else plan.command(run_)
            lines.append(f"# done: {command}" if status == "done" else command)
        try:
            print("\n".join(lines), flush=True)
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            sys.stdout = open(os.devnull, "w")
        return 0
    if not args.collect:
        code = execute(plan, args.parallel, args.quiet, plugins=args.plugin)
        if code:
            return code
    return report(plan, args.sort, args.group)


def _check_axes(plan, args: argparse.Namespace) -> None:
    from stackform.assemble.sweep.report import axis_key

    for flag, name in (("--sort", args.sort if args.sort not in ("file", "loss") else None), ("--group", args.group)):
        if name is not None:
            try:
                axis_key(plan.sweep, name)
            except StackformError as exc:
                raise StackformError(f"{flag} {name}: {exc}") from None


def report(plan, sort: str, group: str | None) -> int:
    from stackform.assemble.sweep.plot import plot_sweep
    from stackform.assemble.sweep.report import sorted_variants, terminal_report, write_markdown
    from stackform.assemble.sweep.results import collect

    results = collect(plan)
    if not any(v.runs for v in results.variants):
        raise StackformError(f"{plan.out_dir}: no finished run of this sweep yet "
                             f"({len(plan.runs)} planned); run `stackform sweep {plan.sweep.path}` first")
    print(terminal_report(results, sort, group))
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    picture = plot_sweep(results, plan.out_dir / "sweep.png", sorted_variants(results, sort))
    markdown = write_markdown(results, plan.out_dir / "sweep.md", sort=sort, group=group)
    print(f"report: {markdown}\npicture: {picture}")
    return 0
