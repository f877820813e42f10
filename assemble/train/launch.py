"""``stackform train --nproc N``: the same command again, as N processes of one run, through torchrun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Sequence

from stackform.specs import Spec

from .device import TrainingError, resolve_device
from .distributed import parallel_mode, world_size


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node N -m stackform.assemble train ARGV``."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "stackform.assemble", "train", *argv]


def check_launch(nproc: int, spec: Spec | None) -> None:
    """One-line errors before any process starts: bad N, already under torchrun, a spec that does not fit N."""
    if nproc < 1:
        raise TrainingError(f"--nproc {nproc}: give a number of processes, 1 or more")
    if "TORCHELASTIC_RUN_ID" in os.environ or world_size() > 1:
        raise TrainingError("--nproc: this process was started by torchrun already; leave --nproc out")
    if spec is None:
        return
    parallel_mode(spec, nproc)
    device = resolve_device(spec.train.device)
    if device.type == "cuda":
        import torch

        if nproc > torch.cuda.device_count():
            raise TrainingError(f"--nproc {nproc}: one GPU per process, and this machine has "
                                f"{torch.cuda.device_count()}")


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run torchrun with ``argv`` (the train command's arguments without --nproc); its exit status,
    or 130 when this command was interrupted: a Ctrl-C reaches torchrun and its workers by itself
    (they save and stop), a SIGTERM to this process is passed on to torchrun once.
    PYTHONSAFEPATH keeps the current folder off sys.path in torchrun and in every worker."""
    process = subprocess.Popen(torchrun_command(nproc, argv), env={**os.environ, "PYTHONSAFEPATH": "1"})
    interrupted = []

    def forward(signum, frame):
        interrupted.append(signum)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

    try:
        previous = signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread
        previous = None
    try:
        while True:
            try:
                status = process.wait()
                return 130 if interrupted else status
            except KeyboardInterrupt:  # torchrun got the same Ctrl-C and stops its workers; wait for it
                interrupted.append(signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
