"""Running a sweep's runs: one after another in this process, or ``--parallel N`` processes (torch
threads split between them; one GPU each when there are several). A finished run is skipped; a
half-finished one (it has a checkpoint) is resumed exactly, as ``stackform train --resume`` would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from stackform.assemble.train.device import TrainingError

from .plan import Plan, SweepRun

STATE_FILE = "train_state.safetensors"
MODEL_FILE = "model.safetensors"


def _counters(folder: Path) -> dict:
    """The step, tokens and elapsed time in a run's training state (its header only)."""
    from safetensors import safe_open

    try:
        with safe_open(str(folder / STATE_FILE), framework="pt", device="cpu") as handle:
            meta = handle.metadata() or {}
        counters = json.loads(meta.get("stackform.train_state", "{}"))
        return counters if isinstance(counters, dict) else {}
    except Exception:  # a damaged state: the run starts over
        return {}


def run_status(run: SweepRun) -> str:
    """``done`` (its budget is spent), ``partial`` (a checkpoint to resume from) or ``new``."""
    folder = run.folder
    if not (folder / STATE_FILE).is_file() or not (folder / MODEL_FILE).is_file():
        return "new"
    counters = _counters(folder)
    step = counters.get("step")
    if not isinstance(step, int):
        return "new"
    train = run.spec.train
    elapsed = counters.get("elapsed_s", 0.0)
    if step >= train.steps or (train.max_minutes is not None and isinstance(elapsed, (int, float))
                               and elapsed >= 60 * train.max_minutes):
        return "done"
    return "partial"


def check_folder(run: SweepRun) -> None:
    """A folder holding a run of another model (the sweep file changed since) is not touched."""
    from stackform.assemble.viz.runs import checkpoint_spec

    if not (run.folder / MODEL_FILE).is_file():
        return
    try:
        stored = checkpoint_spec(run.folder)
    except Exception:
        return
    if stored.model != run.spec.model or stored.train.seed != run.spec.train.seed:
        raise TrainingError(f"{run.folder} holds a run of another spec than this sweep's variant {run.variant.label} "
                            f"(seed {run.seed}); the sweep file changed? move that folder away or use another --out-dir")


def _gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def _say(text: str, quiet: bool) -> None:
    if not quiet:
        print(text, flush=True)


def execute(plan: Plan, parallel: int | None = None, quiet: bool = False, plugins: list[str] = ()) -> int:
    """Train every run of the plan that is not done; 0, or 130 when interrupted. ``plugins``: the
    modules of ``--plugin``, passed on to each process of a parallel sweep."""
    runs = [run for run in plan.runs]
    for run in runs:
        check_folder(run)
    todo = [(run, run_status(run)) for run in runs]
    done = sum(status == "done" for _, status in todo)
    todo = [(run, status) for run, status in todo if status != "done"]
    _say(f"sweep {plan.sweep.name}: {len(runs)} runs ({len(plan.sweep.variants)} variants x "
         f"{len(plan.sweep.seeds)} seeds) in {plan.out_dir}; {done} done, {len(todo)} to train", quiet)
    gpus = _gpus()
    workers = parallel if parallel is not None else (gpus if gpus > 1 else 1)
    if workers <= 1:
        return _sequential(plan, todo, quiet)
    return _parallel(plan, todo, workers, gpus, quiet, list(plugins))


def _sequential(plan: Plan, todo: list[tuple[SweepRun, str]], quiet: bool) -> int:
    from stackform.assemble.train.run import train

    for i, (run, status) in enumerate(todo, 1):
        verb = "resuming" if status == "partial" else "training"
        _say(f"[{i}/{len(todo)}] {verb} {run.variant.label}, seed {run.seed} -> {run.folder}", quiet)
        if status == "partial":
            result = train(None, run.train_overrides(), resume=run.folder, quiet=quiet)
        else:
            result = train(plan.sweep.base_ref, run.overrides(), out_dir=run.folder, overwrite=True, quiet=quiet)
        if result.stopped == "interrupted":
            _say(f"interrupted: {run.folder} is saved; run the same command again to continue the sweep", False)
            return 130
    return 0


def _argv(plan: Plan, run: SweepRun, status: str, plugins: list[str]) -> list[str]:
    base = [sys.executable, "-m", "stackform.assemble", "train", *(f"--plugin={m}" for m in plugins)]
    if status == "partial":
        return [*base, "--resume", str(run.folder), *run.train_overrides(), "--quiet"]
    return [*base, plan.sweep.base_ref, *run.overrides(), "--out-dir", str(run.folder), "--overwrite", "--quiet"]


def _env(slot: int, workers: int, gpus: int) -> dict[str, str]:
    env = dict(os.environ)
    threads = max(1, (os.cpu_count() or 1) // workers)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    if gpus > 1:
        env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
    return env


def _parallel(plan: Plan, todo: list[tuple[SweepRun, str]], workers: int, gpus: int, quiet: bool,
              plugins: list[str]) -> int:
    queue = list(enumerate(todo, 1))
    lock = threading.Lock()
    children: dict[int, subprocess.Popen] = {}
    failures: list[str] = []
    stopping = threading.Event()

    def worker(slot: int) -> None:
        while not stopping.is_set():
            with lock:
                if not queue:
                    return
                i, (run, status) = queue.pop(0)
            log = run.folder / "sweep.log"
            run.folder.mkdir(parents=True, exist_ok=True)
            _say(f"[{i}/{len(todo)}] {'resuming' if status == 'partial' else 'training'} {run.variant.label}, "
                 f"seed {run.seed} -> {run.folder} (process {slot}; log {log.name})", quiet)
            with open(log, "ab") as out:
                child = subprocess.Popen(_argv(plan, run, status, plugins), env=_env(slot, workers, gpus), stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
                with lock:
                    children[slot] = child
                code = child.wait()
            with lock:
                children.pop(slot, None)
            if code == 130 or stopping.is_set():
                stopping.set()
            elif code != 0:
                failures.append(f"{run.folder}: exit {code} (see {log})")

    threads = [threading.Thread(target=worker, args=(slot,), daemon=True) for slot in range(workers)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:  # the children run in their own sessions: tell each once, then wait
        stopping.set()
        with lock:
            for child in children.values():
                child.send_signal(signal.SIGINT)
        for thread in threads:
            thread.join()
        _say("interrupted: the runs are saved; run the same command again to continue the sweep", False)
        return 130
    if failures:
        raise TrainingError(f"{len(failures)} run(s) failed: " + "; ".join(failures))
    return 130 if stopping.is_set() else 0
