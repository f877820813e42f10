"""One GPU round (issue 19, points 1, 3 and 4) in one command that ends inside a fixed wall time (not a test).

    python tests/benchmarks/gpu_round.py --out DIR            # on a CUDA machine: about 6.5 minutes
    python tests/benchmarks/gpu_round.py --out DIR --tiny     # the same steps at tiny sizes on the CPU

Parts, each a subprocess with its own time limit, each writing its raw output to a file of DIR
(and to stdout):

1. ``variants.txt``: tests/benchmarks/bench_gpu_step_variants.py, the candidates of
   docs/performance.md ("The next GPU run") on the default path against the compiled
   hand-written GPT-2 in the same process.
2. ``generation.txt``: ``python -m stackform.assemble.bench.generation --shape gpt2``: KV-cache greedy
   decoding of 256 tokens, batch 1 and 8, stackform against transformers' ``generate`` (dynamic
   cache, and static cache compiled by transformers) on the same random gpt2-sized weights.
3. ``train.txt``: ``gpt-tiny``, ``transformer-tiny`` and ``bert-tiny``, each with a short time
   budget; then ``stackform train gpt2`` on a real text folder (the .py files of the Python
   standard library of the machine, tests left out, as UTF-8 bytes) for a fixed number of
   tokens with ``train.compile=true``, stopped at ``--deadline`` if it runs late. After each
   run a summary line from its metrics.jsonl.

``env.txt`` records the machine (nvidia-smi, torch, transformers); ``metrics.txt`` every run's
metrics.jsonl. A part that would overrun its limit is stopped (SIGTERM; a training run then
saves and ends) and the next part starts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Smaller than the prepared list of docs/performance.md: what fits about 2.5 minutes with the
# compiled hand-written model and the default path (each compile is ~30 s on a fresh machine).
CANDIDATES = "hand-written,stackform,stackform-flash,stackform-aggressive,stackform-no-persistent,stackform-combo"
TINY_GPT2 = ["model.n_layers=2", "model.d_model=64", "model.n_heads=4", "model.ffn.hidden=128", "model.max_len=64"]
START = time.time()


def say(out: Path, text: str) -> None:
    print(text, flush=True)
    with open(out, "a") as f:
        f.write(text + "\n")


def run_part(out: Path, cmd: list[str], limit: float, cwd: Path | None = None) -> float:
    """Run ``cmd`` with its output into ``out`` (then copied to stdout); SIGTERM at ``limit`` s, SIGKILL 30 s later."""
    say(out, f"$ {' '.join(cmd)}   (limit {limit:.0f} s, t={time.time() - START:.0f} s)")
    since = out.stat().st_size
    t = time.time()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(out, "a") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True)
        sent = None
        while p.poll() is None:
            time.sleep(0.5)
            if sent is None and time.time() - t > limit:
                os.killpg(p.pid, signal.SIGTERM)
                sent = time.time()
            elif sent is not None and time.time() - sent > 30:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    took = time.time() - t
    with open(out, "a") as f:
        f.write(f"-> exit {p.returncode} after {took:.0f} s{' (stopped at its limit)' if sent else ''}\n")
    sys.stdout.write(out.read_bytes()[since:].decode("utf-8", "replace"))
    sys.stdout.flush()
    return took


def build_corpus(folder: Path, limit_bytes: int) -> tuple[int, int, str]:
    """Copy the standard library's .py files (tests excluded, UTF-8 only) into ``folder``."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    folder.mkdir(parents=True, exist_ok=True)
    files = total = 0
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        if any(part in ("test", "tests", "idle_test", "site-packages", "dist-packages") for part in rel.parts):
            continue
        try:
            data = path.read_bytes()
            data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if total + len(data) > limit_bytes:
            break
        (folder / "__".join(rel.parts)).write_bytes(data)
        files, total = files + 1, total + len(data)
    return files, total, str(stdlib)


def summarize(out: Path, metrics_out: Path, name: str, run_dir: Path, wall: float) -> None:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        say(out, f"summary {name}: no metrics.jsonl (the run did not get far enough)")
        return
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    with open(metrics_out, "a") as f:
        f.write(f"# {name}\n" + path.read_text())
    train = [r for r in rows if r.get("split") == "train"]
    val = [r for r in rows if r.get("split") == "val"]
    rates = [r["tokens_per_s"] for r in (train[1:] or train) if r.get("tokens_per_s")]  # the first: compiling too
    last = train[-1] if train else {}
    final = val[-1] if val else {}
    metric = {k: final[k] for k in ("loss", "bpb", "exact_match", "unigram_loss") if final.get(k) is not None}
    say(out, f"summary {name}: steps {last.get('step')}, train time {last.get('elapsed_s', 0):.1f} s, "
             f"wall {wall:.0f} s, tokens/s median {sorted(rates)[len(rates) // 2] if rates else float('nan'):,.0f} "
             f"(train lines after the first, if more than one), final val {metric}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="folder for the raw outputs")
    p.add_argument("--tiny", action="store_true", help="a dry run of every part at tiny sizes on the CPU")
    p.add_argument("--parts", default="env,variants,generation,gpt2,zoo")
    p.add_argument("--variants", default=CANDIDATES)
    p.add_argument("--variants-budget", type=float, default=95, help="start no variant after this (s)")
    p.add_argument("--limits", help="seconds: variants, generation, gpt2, each zoo spec (default 160,95,80,25; "
                                    "with --tiny 900,300,300,120)")
    p.add_argument("--deadline", type=float, help="the gpt2 run (the last part) is stopped by then (s; default 385, "
                                                   "none with --tiny)")
    p.add_argument("--gpt2-steps", type=int, default=500, help="16 x 1024 tokens each")
    p.add_argument("--zoo-minutes", type=float, default=0.15, help="train.max_minutes of each zoo spec")
    args = p.parse_args()
    if args.tiny:
        args.gpt2_steps = min(args.gpt2_steps, 20)
    deadline = args.deadline or (float("inf") if args.tiny else 385.0)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    limits = args.limits or ("900,300,300,120" if args.tiny else "160,95,80,25")
    lim = dict(zip(("variants", "generation", "gpt2", "zoo"), map(float, limits.split(","))))
    py, work = sys.executable, Path(os.environ.get("TMPDIR", "/tmp")) / "gpu_round"
    stackform = [py, "-m", "stackform.assemble"]
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if "env" in parts:
        import torch
        import transformers

        env = out / "env.txt"
        say(env, f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, "
                 f"cuda {torch.cuda.is_available() and torch.cuda.get_device_name(0)}, cpus {os.cpu_count()}, "
                 f"load {os.getloadavg()}")
        if shutil.which("nvidia-smi"):
            run_part(env, ["nvidia-smi"], 20)
    if "variants" in parts:
        f = out / "variants.txt"
        cmd = [py, str(ROOT / "tests/benchmarks/bench_gpu_step_variants.py"), "--only", args.variants,
               "--budget", str(args.variants_budget), "--top", "6", "--repeats", "5"]
        run_part(f, cmd + (["--cpu", "--repeats", "2"] if args.tiny else []), lim["variants"])
    if "generation" in parts:
        f = out / "generation.txt"
        cmd = [py, "-m", "stackform.assemble.bench.generation", "--hf-static", "--batches", "1", "8"]
        cmd += (["--shape", "tiny", "--new", "32", "--rounds", "1"] if args.tiny
                else ["--shape", "gpt2", "--device", "cuda", "--rounds", "3"])
        run_part(f, cmd, lim["generation"])
    train_out, metrics = out / "train.txt", out / "metrics.txt"
    if "zoo" in parts:
        for spec in ("gpt-tiny", "transformer-tiny", "bert-tiny"):
            run_dir = work / spec
            cmd = [*stackform, "train", spec, f"train.max_minutes={args.zoo_minutes}", f"train.out_dir={run_dir}"]
            if args.tiny:
                cmd += ["train.eval_steps=2"]
            wall = run_part(train_out, cmd, lim["zoo"], cwd=work)
            summarize(train_out, metrics, spec, run_dir, wall)
    if "gpt2" in parts:
        corpus = work / "corpus"
        files, size, where = build_corpus(corpus, (1 << 20) if args.tiny else (16 << 20))
        say(train_out, f"corpus: {files} .py files of {where} (tests excluded), {size:,} bytes, in {corpus}")
        run_dir = work / "gpt2"
        cmd = [*stackform, "train", "gpt2", f"train.data={{type: text, path: {corpus}}}", "train.batch_size=16",
               f"train.steps={args.gpt2_steps}", f"train.schedule.warmup={max(1, args.gpt2_steps // 10)}",
               "train.optimizer.lr=6e-4", "train.optimizer.betas=[0.9, 0.95]", "train.compile=true",
               f"train.eval_every={args.gpt2_steps}", "train.log_every=50", "train.sample_tokens=64",
               f"train.out_dir={run_dir}"]
        if args.tiny:
            cmd += TINY_GPT2 + ["train.log_every=5"]
        left = deadline - (time.time() - START)  # the last part: what is left of the deadline, at most its limit
        wall = run_part(train_out, cmd, min(lim["gpt2"], left), cwd=work)
        summarize(train_out, metrics, "gpt2 (text folder)", run_dir, wall)
    print(f"gpu_round: total {time.time() - START:.0f} s", flush=True)


if __name__ == "__main__":
    main()
