"""``stackform compare RUN [RUN ...] --out curves.png``: loss curves of runs overlaid, with their
spec differences in the legend, and a summary table."""

from __future__ import annotations

import argparse

from stackform.assemble.viz.errors import VizError
from stackform.assemble.viz.figure import check_image_path
from stackform.registry import printable


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (each with metrics.jsonl and a spec)")
    p.add_argument("--out", required=True, metavar="FILE", help="the picture (.png, .svg or .pdf)")
    p.add_argument("--x", choices=["step", "time"], default="step", help="x axis: step (default) or elapsed time")
    p.add_argument("--log-y", action="store_true", help="logarithmic loss axis")
    p.add_argument("--title", default="", help="title of the plot")


def run(args: argparse.Namespace) -> int:
    from stackform.assemble.cli.attention import check_output
    from stackform.assemble.cli.generate import text_flag
    from stackform.assemble.viz.compare import legend_labels, not_comparable, plot_runs, summary_rows
    from stackform.assemble.viz.runs import read_run

    args.title = text_flag(args.title, "--title")
    check_image_path(args.out, "--out")
    check_output(args.out, "--out")  # not a folder; its folder writable
    if len(set(args.runs)) != len(args.runs):
        raise VizError("compare: a run folder is given twice")
    runs = [read_run(path) for path in args.runs]
    rows = summary_rows(runs)
    width = max(len(r[0]) for r in rows)
    print(f"{'run':<{width}} {'steps':>7} {'train loss':>11} {'best val':>9}")
    for row in rows:
        print(printable(f"{row[0]:<{width}} {row[1]:>7} {row[2]:>11} {row[3]:>9}"))
    print("\n".join(printable(label.replace("\n", " ")) for label in legend_labels(runs, width=10_000)))
    note = not_comparable(runs)
    if note:
        print(printable(note))
    print(printable(f"curves: {plot_runs(runs, args.out, x=args.x, log_y=args.log_y, title=args.title)}"))
    return 0
