"""``stackform eval RUN [--data SPEC_DATA] [--split val|train]``: loss, perplexity, bits per byte
(causal LM), exact match (seq2seq) or the MLM loss and its unigram baseline, of any checkpoint."""

from __future__ import annotations

import argparse
import json
import math

from stackform.registry import printable

EPILOG = """examples:
  stackform eval runs/gpt-tiny                                 # its own validation split
  stackform eval runs/gpt-tiny/best.safetensors --split train  # train.keep_best's checkpoint, on the train split
  stackform eval runs/gpt-tiny --data held_out.jsonl --split all  # type from the suffix (jsonl, parquet, tsv, text)
  stackform eval runs/gpt-tiny --data '{type: jsonl, path: qa.jsonl, field: answer, val_fraction: 0.5}'"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("checkpoint", metavar="RUN", help="a run folder, or a .safetensors checkpoint (best.safetensors)")
    p.add_argument("--data", metavar="SPEC_DATA",
                   help="other data: a path (relative to here), or a train.data mapping in YAML; default: the run's")
    p.add_argument("--split", choices=["val", "train", "all"], default="val",
                   help="which split of the data (default val; all: every token or pair of it, e.g. a held-out file)")
    p.add_argument("--batch-size", type=int, metavar="N", help="sequences per batch (default: train.batch_size)")
    p.add_argument("--batches", type=int, metavar="N", help="evaluate N batches at most (default: the whole split)")
    p.add_argument("--device", default="auto", metavar="D", help="cpu, cuda, cuda:1, ... (default: cuda if present)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text lines")


def metric_line(task: str, metrics: dict[str, float]) -> str:
    """The metrics as one line of text."""
    from stackform.assemble.train.console import fmt_ppl

    loss = metrics["loss"]
    ppl = fmt_ppl(metrics["ppl"], 3)
    if task == "seq2seq":
        return f"loss {loss:.4f}, perplexity {ppl}, exact match {100 * metrics['exact_match']:.2f}%"
    if task == "causal_lm":
        return f"loss {loss:.4f} nats/token, perplexity {ppl}, {metrics['bpb']:.4f} bits per byte"
    line = f"MLM loss {loss:.4f} nats/masked token, perplexity {ppl}"
    base = metrics.get("unigram_loss")
    if base is not None and math.isfinite(base) and math.isfinite(loss):
        change = "lower" if loss <= base else "higher"
        line += f", unigram baseline {base:.4f} ({100 * abs(1 - loss / base):.1f}% {change})"
    return line


def run(args: argparse.Namespace) -> int:
    from stackform.assemble.eval import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, args.data, args.split, batch_size=args.batch_size,
                                 max_batches=args.batches, device=args.device)
    if args.json:
        record = {"checkpoint": result.checkpoint, "step": result.step, "task": result.task, "data": result.source,
                  "split": result.split, "batches": result.batches, **result.metrics}
        print(json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}))
        return 0
    step = f" (step {result.step})" if result.step is not None else ""
    print(printable(f"{result.checkpoint}{step} on {result.source}, {result.split} split, {result.batches} batches"))
    print(f"  {metric_line(result.task, result.metrics)}")
    return 0
