"""``stackform inspect SPEC_OR_CKPT``: per-block table, totals, FLOPs per token, a training-memory
estimate and, with ``--diagram``, a picture of the architecture. Everything comes from arithmetic
on a meta-device sample (one layer per distinct layer plan, ``assemble.size``), so a spec of 10**6
layers is inspected in about a second and costs no memory. A checkpoint's stored spec is first
checked against the file's tensor header (names, shapes, dtypes, bytes), without reading the weights.
"""

from __future__ import annotations

import argparse
import os

from stackform.assemble.inspect import PRECISION_BYTES, InspectError, Row, block_rows, num_parameters, training_memory
from stackform.assemble.size import SampledModel, sample_model
from stackform.registry import printable
from stackform.specs import load_spec

DIAGRAM_LAYERS = 4096  # --diagram builds every layer (on the meta device); more would take minutes


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC_OR_CKPT", help="spec file, zoo name, checkpoint or run folder")
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="dotted overrides, e.g. model.n_layers=2")
    p.add_argument("--context", type=int, help="tokens of context for attention FLOPs (default max_len)")
    p.add_argument("--all", action="store_true", help="list every block, not a summary of repeated layers")
    p.add_argument("--batch", type=int, metavar="B", help="sequences per step for the memory estimate "
                   "(default train.batch_size)")
    p.add_argument("--seq", type=int, metavar="T", help="tokens per sequence for the memory estimate "
                   "(default train.seq_len, else max_len)")
    p.add_argument("--precision", choices=sorted(PRECISION_BYTES), default="fp32",
                   help="activation precision: fp32, or bf16/fp16 autocast (weights stay fp32)")
    p.add_argument("--diagram", metavar="FILE", help="draw the architecture to FILE (.svg, .png or .pdf)")


def _human(n: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def _bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def _load_spec(name: str, overrides: list[str]):
    if name.endswith(".safetensors") or os.path.isdir(name):
        from stackform.assemble.checkpoint_check import checked_spec

        return load_spec(checked_spec(name), overrides)
    return load_spec(name, overrides)


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise InspectError(f"{flag} {value}: must be a positive number of tokens or sequences")


def _every_row(sample: SampledModel, row: Row):
    """The rows of the real model a sampled row stands for (its path in each layer it repeats)."""
    for prefix, runs in sample.runs.items():
        if row.path.startswith(prefix):
            index, rest = (row.path[len(prefix):].split(".", 1) + [""])[:2]
            for built, first, repeat in runs:
                if built == int(index):
                    for layer in range(first, first + repeat):
                        yield Row(f"{prefix}{layer}" + (f".{rest}" if rest else ""), row.type, row.params, row.flops,
                                  row.active_params, row.embedding)
            return
    yield row


def print_table(sample: SampledModel, context: int | None, show_all: bool) -> None:
    model, weight = sample.model, sample.repeats
    rows = block_rows(model, context)
    spec = model.spec
    print(printable(f"{spec.name}: {spec.model.kind}, d_model {spec.model.d_model}, {spec.model.n_heads} heads, "
          f"vocab {spec.model.vocab_size}, max_len {spec.model.max_len}"))
    print(f"{'block':<44} {'type':<30} {'params':>10} {'FLOPs/token':>12}")
    shown = 0
    for row in rows:
        layer = row.path.split(".layers.")
        if not show_all and len(layer) > 1 and not layer[1].startswith("0."):
            continue  # layers repeat: show layer 0, count all
        for each in (_every_row(sample, row) if show_all else [row]):
            print(printable(f"{each.path:<44} {each.type:<30} {_human(each.params):>10} {_human(each.flops):>12}"))
            shown += 1
    n_rows = sum(weight(r.path) for r in rows)
    if not show_all and shown < n_rows:
        print(f"({n_rows - shown} more blocks in layers 1.. not shown; --all lists them)")
    total = num_parameters(model, weight)
    embed = sum(r.params for r in rows if r.embedding)
    forward = sum(r.flops * weight(r.path) for r in rows)
    print(f"parameters: {total:,} ({_human(total)}), without embeddings {total - embed:,}")
    active = total - sum((r.params - r.active_params) * weight(r.path) for r in rows)
    if active != total:  # sparse blocks (a mixture of experts) declare what one token uses: cost().active_params
        print(f"active parameters per token: {active:,} ({_human(active)})")
    print(f"FLOPs per token: forward {_human(forward)}, training (x3) {_human(3 * forward)} "
          f"at context {context or spec.model.max_len}")


def print_memory(sample: SampledModel, batch: int, seq: int, precision: str) -> None:
    memory = training_memory(sample.model, batch, seq, precision, sample.repeats)
    print(f"training memory (AdamW, {precision} activations) at batch {batch} x seq {seq}:")
    names = {"weights": "weights (fp32)", "gradients": "gradients (fp32)", "adamw": "AdamW moments (2 x fp32)",
             "activations": "activations"}
    for key, label in names.items():
        print(f"  {label:<26} {_bytes(memory[key]):>12}")
    print(f"  {'total':<26} {_bytes(sum(memory.values())):>12}")


def run(args: argparse.Namespace) -> int:
    for value, flag in ((args.context, "--context"), (args.batch, "--batch"), (args.seq, "--seq")):
        _positive(value, flag)
    if args.diagram:
        from stackform.assemble.cli.attention import check_output
        from stackform.assemble.viz.figure import check_image_path

        check_image_path(args.diagram, "--diagram")
        check_output(args.diagram, "--diagram")  # not a folder; its folder writable
    spec = _load_spec(args.spec, args.overrides)
    seq = args.seq or spec.train.seq_len or spec.model.max_len
    if seq > spec.model.max_len:
        raise InspectError(f"--seq {seq}: longer than max_len {spec.model.max_len} of the spec")
    layers = sum(spec.model.n_layers_of(side) for side in spec.model.sides)
    if args.diagram and layers > DIAGRAM_LAYERS:
        raise InspectError(f"--diagram: {layers} layers are too many to draw (at most {DIAGRAM_LAYERS})")
    sample = sample_model(spec, args.spec)
    print_table(sample, args.context, args.all)
    print_memory(sample, args.batch or spec.train.batch_size, seq, args.precision)
    if args.diagram:
        from stackform.assemble.build import assemble
        from stackform.assemble.viz.diagram import draw_architecture

        print(printable(f"diagram: {draw_architecture(assemble(spec, device='meta'), args.diagram)}"))
    return 0
