"""The machine a run shares: torch's CPU threads, the cores this process may use, the load average."""

from __future__ import annotations

import os

import torch


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float | None:
    """The 1-minute load average, or None where the system has none (Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def set_threads(threads: int | None) -> None:
    """``--threads N``: torch's intra-op CPU threads (default: torch's, one per core)."""
    if threads is not None:
        torch.set_num_threads(threads)


def describe() -> str:
    """``2 threads, load average 0.85 on 2 cores``."""
    n = torch.get_num_threads()
    load = load_average()
    where = f", load average {load:.2f} on {cores()} cores" if load is not None else f" on {cores()} cores"
    return f"{n} thread{'s' if n != 1 else ''}{where}"


def busy_warning() -> str | None:
    """A warning when other work keeps the cores busy: torch's threads then wait on each other."""
    load, n = load_average(), cores()
    if load is None or load <= n:
        return None
    threads = torch.get_num_threads()
    advice = ("try --threads 1 (with other jobs on every core, more threads wait on each other: "
              "several times slower is common)" if threads > 1 else "expect slower steps")
    return (f"warning: this machine is busier than its cores (load average {load:.2f} on {n} cores, "
            f"{threads} torch thread{'s' if threads != 1 else ''}); {advice}")
