"""``train()``: spec in, a trained run folder out (or a run folder in, continued with ``resume``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from stackform.blocks import Stack
from stackform.registry import printable
from stackform.specs import Spec, load_spec

from ..build import build_model
from ..checkpoint import atomic_write, load, read_checkpoint, spec_of
from ..data import load_task, unigram_log_probs
from ..errors import StackformError
from ..trainable import require_trainable, where_of
from . import distributed
from .commit import PENDING_FILE, find_pair, read_metadata
from .consolidate import state_hooks
from ..tokenizers import resolve_paths, save_tokenizer, tokenizer_meta
from .console import Console, MetricsLog, fmt_duration
from .init_from import folder_spec, prepare
from .device import TrainingError, configure, resolve_device, resolve_precision
from .lock import LOCK_FILE, RunLock, check_unlocked, hold
from .keep_best import BEST_FILE
from .loggers import LOGGER_FILES, open_loggers
from .loop import MODEL_FILE, Run, Trainer
from .lora import write_adapter
from .loss import loss_function
from .machine import busy_warning
from .optim import build_optimizer
from .parallel_loop import ParallelTrainer, SilentLog
from .report import plot_curves, samples
from .state import STATE_FILE, STATE_KEY, Counters, load_train_state
from .state_check import parse_counters
from .summary import header, resume_hint, summary

RUN_FILES = (MODEL_FILE, STATE_FILE, "metrics.jsonl", "spec.yaml", "curves.png", "samples.txt")
OPTIONAL_RUN_FILES = (BEST_FILE, *LOGGER_FILES, "tokenizer.json", "adapter.safetensors")  # keep_best, train.log, a vocabulary tokenizer, LoRA
# Files only a run has: a folder with run files but none of these (a lone spec.yaml) is the user's.
RUN_EVIDENCE = (MODEL_FILE, STATE_FILE, "metrics.jsonl")


@dataclass
class TrainResult:
    """What a run ended with: final validation metrics, where its files are, why it stopped."""

    out_dir: Path
    step: int
    stopped: str  # done | time budget | interrupted | stop_at_step
    metrics: dict[str, float]
    elapsed_s: float
    spec: Spec
    model: Any = field(repr=False, default=None)
    samples: list[str] = field(default_factory=list, repr=False)
    samples_error: str | None = None  # why the end-of-run samples could not be made (samples.txt says it too)
    skipped: int = 0  # steps whose update was dropped for a non-finite loss or gradient (on_nan: skip)


def _resume_spec(resume: Path, spec: Any, overrides: Sequence[str]) -> Spec:
    if not resume.is_dir() or not any((resume / name).is_file() for name in (STATE_FILE, PENDING_FILE)):
        hint = (f"; to fine-tune its weights, train it: stackform train {resume} [KEY=VALUE ...]"
                if (resume / MODEL_FILE).is_file() and (resume / "spec.yaml").is_file() else "")
        raise TrainingError(f"--resume {resume}: not a run folder (needs {MODEL_FILE} and {STATE_FILE}){hint}")
    pair = find_pair(resume)  # the model and the state of one save, or one line saying they are not
    _, meta = read_checkpoint(resume / MODEL_FILE)
    stored = spec_of(meta, str(resume / MODEL_FILE))
    for text in overrides:
        if not text.strip().startswith("train."):
            raise TrainingError(
                f"override '{text}': only train.* settings can change when resuming (the model comes from {resume})"
            )
    if spec is not None and load_spec(spec).model != stored.model:
        raise TrainingError(f"--resume {resume}: the given spec's model differs from the run's; "
                            "leave the spec out (the run's own spec is used) or start a new run")
    resumed = load_spec(stored, overrides)
    step = pair.step
    if resumed.train.steps <= step:  # nothing to train: refuse before anything in the folder is rewritten
        raise TrainingError(f"--resume {resume}: the run is already at step {step} and train.steps is "
                            f"{resumed.train.steps}; give train.steps=N with N above {step} to train longer")
    _check_budget_left(resume, resumed, pair.state)
    return resumed


def _check_budget_left(resume: Path, spec: Spec, state: Path) -> None:
    """A run whose time budget (a total, train.max_minutes) is spent would only evaluate again: refuse."""
    budget = spec.train.max_minutes
    if not budget:
        return
    elapsed = parse_counters(read_metadata(state).get(STATE_KEY, "null"), str(state), STATE_KEY)["elapsed_s"]
    if elapsed >= 60 * budget:
        raise TrainingError(
            f"--resume {resume}: the run has used {fmt_duration(elapsed)} of its {budget:g} min budget "
            f"(train.max_minutes, a total for the run); train longer with: {resume_hint(resume, budget, elapsed)}")


def plan(spec: Any, overrides: Sequence[str], out_dir: Any, resume: Any, overwrite: bool) -> tuple[Spec, Path]:
    """The run's spec and folder, or a one-line error, before any training starts."""
    spec = resolve_spec(spec, overrides, resume)
    return spec, run_folder(spec, out_dir, resume, overwrite)


def resolve_spec(spec: Any, overrides: Sequence[str], resume: Any) -> Spec:
    """The spec a run trains: ``spec`` with ``overrides``, or the resumed run's own (``train.*``
    overrides only). Reads files, writes nothing."""
    if resume is not None:
        return _resume_spec(Path(resume), spec, overrides)
    if spec is None:
        raise TrainingError("train: give a spec (a path, zoo name, dict or Spec) or resume=RUN_DIR")
    spec, init = folder_spec(spec)  # an import-hf or run folder: fine-tune its own weights
    return resolve_paths(load_spec(spec, [*init, *overrides]), spec)


def run_folder(spec: Spec, out_dir: Any, resume: Any, overwrite: bool) -> Path:
    """The run folder, made and checked: writable, and not another run's unless ``overwrite``."""
    return _out_dir(spec, out_dir, Path(resume) if resume is not None else None, overwrite)


def _out_dir(spec: Spec, out_dir: Any, resume: Path | None, overwrite: bool) -> Path:
    if out_dir is not None and not str(out_dir).strip():
        raise TrainingError("--out-dir: an empty path; give a folder (default: runs/<spec name>)")
    out = Path(out_dir or resume or spec.train.out_dir or Path("runs") / spec.name)
    check_owned(out, resume, overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check."):
            pass
    except OSError as exc:
        raise TrainingError(f"{out}: the run folder is not writable ({exc.strerror or exc}); "
                            "pick another --out-dir") from None
    return out


def is_run_file(name: str) -> bool:
    """A name a run writes in its folder: its files, its lock, and the hidden files of saving (the
    temporary ``.NAME.PID.RANDOM.tmp`` of each file, a pending ``.train_state.*``, ...), which
    all begin with a dot and the stem of a run file."""
    own = (*RUN_FILES, *OPTIONAL_RUN_FILES, LOCK_FILE)
    if name in own:
        return True
    hidden = name.lstrip(".")
    return name.startswith(".") and (hidden.startswith("write-check.")
                                     or any(hidden.startswith(f.split(".")[0] + ".") for f in own))


def foreign_files(out: Path) -> list[str]:
    """What in ``out`` is not a stackform run's: every entry that is not a run file, or every entry when
    none shows a run (a spec.yaml with no metrics.jsonl or checkpoint is the user's own spec)."""
    try:
        names = sorted(os.listdir(out))
    except NotADirectoryError:
        return []  # a file: mkdir says so
    except OSError:
        return []
    foreign = [n for n in names if not is_run_file(n)]
    if not foreign and names and not any(n in RUN_EVIDENCE for n in names):
        foreign = [n for n in names if n in RUN_FILES]  # spec.yaml, curves.png, samples.txt
    return foreign


def check_owned(out: Path, resume: Path | None, overwrite: bool, locked: bool = False) -> None:
    """Refuse, in one line, a folder a live trainer holds, and (unless ``overwrite``) another run's
    folder or a folder that holds anything but a run's files. Writes nothing."""
    if not out.is_dir():
        return
    # ``locked``: this process holds the lock. Under torchrun only rank 0 checks it (it takes it in
    # train() and tells the others): another rank may look while its own rank 0 holds it already
    if not locked and os.environ.get("RANK", "0") == "0":
        check_unlocked(out)
    continues = resume is not None and out.resolve() == resume.resolve()
    if continues or overwrite:  # a resume may go on in a new folder, never over another run
        return
    taken = [name for name in (MODEL_FILE, STATE_FILE) if (out / name).exists()]
    if taken:
        raise TrainingError(
            f"{out} already holds a run ({taken[0]}): continue it with --resume {out}, "
            "start over with --overwrite, or pick another --out-dir"
        )
    foreign = foreign_files(out)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" (+{len(foreign) - 5} more)" if len(foreign) > 5 else "")
        raise TrainingError(f"{out}: not a stackform run folder (it holds {shown}); training writes "
                            f"{', '.join(RUN_FILES)} there: pick a new or empty --out-dir, or give --overwrite")


def _check_disk(out: Path, model: torch.nn.Module) -> None:
    """Refuse to start when the run folder's disk cannot hold a checkpoint and the training state."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    need = 6 * params + (64 << 20)  # model + AdamW moments (x2), twice while a save commits (commit.py), + slack
    free = shutil.disk_usage(out).free
    if free < need:
        raise TrainingError(f"{out}: only {free / 2**20:,.0f} MiB free on its disk; a checkpoint of this model "
                            f"with its training state needs about {need / 2**20:,.0f} MiB")


def _model(spec: Spec, resume: Path | None, device: torch.device):
    torch.manual_seed(spec.train.seed)
    if resume is not None:
        model = load(resume / MODEL_FILE)
        model.spec = spec  # same model section; train.* may carry overrides
    else:
        model = build_model(spec)  # on the CPU: the same initial weights on every device
    model.to(device)
    model.check_inputs = False  # the data is made by us: skip the per-batch id check (a host sync)
    if spec.train.activation_checkpointing:
        for module in model.modules():
            if isinstance(module, Stack):
                module.activation_checkpointing = True
    return model


def _run_tokenizer(spec: Spec, resume: Path | None):
    """A resumed run reads its own tokenizer.json (never a new one trained again); None otherwise."""
    if resume is None or spec.train.tokenizer.type in ("bytes", "none") or not (resume / "tokenizer.json").is_file():
        return None
    from ..tokenizers import TextTokenizer, spec_ids

    return TextTokenizer.from_file(resume / "tokenizer.json", template=spec.train.tokenizer.type != "bpe",
                                   **spec_ids(spec.model))


def _samples(model, task, spec: Spec, device: torch.device, amp_dtype) -> tuple[list[str], str | None]:
    """(samples, None), or ([], why) when they cannot be made: the run is saved, so sampling never fails it."""
    try:
        return samples(model, task, spec, device, amp_dtype), None
    except Exception as exc:  # e.g. a diverged model's non-finite probabilities (GenerationError)
        reason = str(exc).splitlines()[0] if str(exc) else ""
        if not isinstance(exc, StackformError):
            reason = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
        return [], reason.removeprefix("error: ")


def train(
    spec: "str | os.PathLike | dict | Spec | None" = None,
    overrides: Sequence[str] = (),
    out_dir: "str | os.PathLike | None" = None,
    resume: "str | os.PathLike | None" = None,
    *,
    overwrite: bool = False,
    stop_at_step: int | None = None,
    quiet: bool = False,
    allow_large: bool = False,
) -> TrainResult:
    """Train the model of ``spec`` (path, zoo name, dict or Spec; dotted ``overrides``) and write
    ``out_dir`` (default ``runs/<name>``): model.safetensors, train_state.safetensors,
    metrics.jsonl, spec.yaml, curves.png, samples.txt.

    ``resume``: a run folder to continue exactly (its own spec; ``train.*`` overrides allowed).
    ``stop_at_step``: stop and save after that step, as an interrupted run would.
    ``allow_large``: train even when one step is estimated not to fit this machine's memory.
    Under torchrun every process calls this; they train one model together (docs/distributed.md).
    Every user error raises a StackformError.
    """
    resume_dir = Path(resume) if resume is not None else None
    given = spec
    spec = resolve_spec(spec, overrides, resume)
    require_trainable(spec, resolve_device(spec.train.device), where_of(given, overrides), allow_large)
    out = run_folder(spec, out_dir, resume, overwrite)
    ranks = distributed.start(spec, resolve_device(spec.train.device))
    # one trainer per folder (rank 0 holds the lock); once it is held, check the folder again: another
    # run may have finished there between plan() and now
    lock = RunLock(None)
    try:
        lock = hold(out, ranks, lambda: check_owned(out, resume_dir, overwrite, locked=True))
        result = _train(spec, out, resume_dir, ranks, stop_at_step, quiet)
    finally:
        lock.release()
    ranks.barrier()  # every process returns once the folder is free (the next run may start at once)
    return result


def _train(spec: Spec, out: Path, resume_dir: Path | None, ranks: Any, stop_at_step: int | None,
           quiet: bool) -> TrainResult:
    device = ranks.device
    amp_dtype = resolve_precision(spec.train.precision, device)
    configure(device)
    known = _run_tokenizer(spec, resume_dir)
    task = load_task(spec, tokenizer=known) if known is not None else load_task(spec)
    model = _model(spec, resume_dir, device)
    notes = prepare(model, spec, resume_dir is not None)  # init_from, freeze (LoRA: build_model)
    tok = getattr(task, "tokenizer", None)
    model.tokenizer, model.tokenizer_meta = tok, tokenizer_meta(tok)
    _check_disk(out, model)
    forward = ranks.prepare(model, spec, amp_dtype)  # DDP wrapper or FSDP2 shards; the model for one process
    optimizer = build_optimizer(model, spec.train.optimizer, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    counters = Counters()
    if resume_dir is not None:
        counters = load_train_state(find_pair(resume_dir, check_sha=False).state, optimizer, task.generator,
                                    **state_hooks(model, optimizer, ranks))
        if scaler is not None and counters.scaler:
            scaler.load_state_dict(counters.scaler)
    # metrics.jsonl is read (and checked) before the first file of the run is written
    resume_step = counters.step if resume_dir else None
    log = open_loggers(spec, out, MetricsLog(out / "metrics.jsonl", resume_step), resume_step) \
        if ranks.is_main else SilentLog()
    if ranks.is_main:
        atomic_write(out / "spec.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False).encode())
        save_tokenizer(out, tok)
    console = Console(spec.train.steps, counters.step, quiet or not ranks.is_main)
    unigram = unigram_log_probs(task.split.train, spec.model.vocab_size) if spec.train.task == "mlm" else None
    run = Run(spec, model, loss_function(model, forward, spec, spec.train.compile, ranks.active), task, optimizer, scaler,
              device, amp_dtype, out, log, console, counters, unigram)
    if resume_dir is not None and out == resume_dir:
        run.last_save_step = counters.step  # its checkpoint is the last good one
    console.line(header(run, resumed=resume_dir is not None) + ranks.describe())
    warning = busy_warning()
    if warning:
        console.line(warning)
    for note in notes:
        console.line(note)
    trainer = ParallelTrainer(run, ranks) if ranks.active else Trainer(run)
    try:
        stopped = trainer.loop(stop_at_step)
        step = counters.step
        metrics = run.last_eval if run.last_eval_step == step else trainer.evaluate(step)
        trainer.save(step)
        if ranks.is_main and spec.train.lora is not None:
            write_adapter(out, model)  # adapter.safetensors: the adapters alone (docs/training.md)
    finally:
        console.close()
        run.log.close()
    if ranks.active:  # FSDP: rank 0 samples from a plain copy of the saved weights
        model, device, amp_dtype = trainer.final_model(model, device, amp_dtype)
    lines, samples_error = [], None
    if ranks.is_main:
        plot_curves(out / "curves.png", run.log.records, f"{spec.name}: loss")
        lines, samples_error = _samples(model, task, spec, device, amp_dtype) if stopped != "interrupted" else ([], None)
        text = f"no samples: {samples_error}" if samples_error else "\n\n".join(lines)
        atomic_write(out / "samples.txt", (text + "\n").encode())
    ranks.barrier()  # every process returns once the run folder is complete
    result = TrainResult(out, counters.step, stopped, metrics, trainer.elapsed(), spec, model, lines,
                         samples_error, counters.skipped)
    if not quiet and ranks.is_main:
        print(printable(summary(result, RUN_FILES + OPTIONAL_RUN_FILES), keep="\n"))
    return result
