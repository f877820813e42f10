"""The lock of a run folder: one trainer writes a folder at a time.

``train.lock`` holds the trainer's pid, host and start time. It is created atomically (``O_EXCL``)
when training starts and removed when it ends, however it ends (done, an error, Ctrl-C). A lock
whose process is gone (a ``kill -9``, a power cut), or whose pid now belongs to a process started
after the lock was written, is stale: the next trainer on the same host takes it over. A lock from another host cannot be checked from here and is never taken over.
Under torchrun only rank 0 holds it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from stackform.registry import printable

from .device import TrainingError

LOCK_FILE = "train.lock"
_WRITING_S = 30.0  # a lock file this young with no content yet is being written, not stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or a pid we cannot ask about): assume it runs
    return True


def _started_after(pid: int, moment: float) -> bool:
    """Whether process ``pid`` started after ``moment`` (epoch seconds): then it is not the trainer that
    wrote the lock but a later process given the same pid (a restarted container counts pids from 1
    again). Read from /proc on Linux; elsewhere (or unreadable) False."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        with open("/proc/stat") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time in clock ticks
    except (OSError, ValueError, IndexError, StopIteration):
        return False
    return started > moment + 2.0  # btime has whole seconds


def _read(path: Path) -> tuple[bytes, dict[str, Any] | None] | None:
    """(raw bytes, holder) of the lock file; holder None when the content is not a lock's; None if gone."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return b"", None
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return raw, None
    ok = isinstance(info, dict) and isinstance(info.get("pid"), int) and isinstance(info.get("host"), str)
    return raw, info if ok else None


def describe(info: dict[str, Any]) -> str:
    """``pid 123 on host-a, since 2026-12-04 13:47:17``."""
    since = info.get("started")
    since_text = f", since {printable(since)}" if isinstance(since, str) else ""
    return f"pid {info['pid']} on {printable(info['host'])}{since_text}"


def _live(path: Path, info: dict[str, Any] | None) -> bool:
    """Whether the trainer named in the lock may still run."""
    if info is None:  # no readable content: being written right now, or left torn long ago
        try:
            return time.time() - path.stat().st_mtime < _WRITING_S
        except OSError:
            return False
    if info["host"] != socket.gethostname():
        return True  # another machine's process: we cannot tell, so it runs
    written = info.get("time")
    if isinstance(written, (int, float)) and _started_after(info["pid"], float(written)):
        return False  # the pid was given to another process since
    return _alive(info["pid"])


def _busy(path: Path, info: dict[str, Any] | None) -> TrainingError:
    who = describe(info) if info is not None else "a trainer that is starting"
    return TrainingError(f"{path.parent}: another training is running in this folder ({who}); wait for it to "
                         f"end or pick another --out-dir (if it is not running, delete {path})")


def check_unlocked(folder: Path) -> None:
    """A one-line TrainingError when a live trainer holds ``folder``; nothing is written."""
    path = folder / LOCK_FILE
    found = _read(path)
    if found is not None and _live(path, found[1]):
        raise _busy(path, found[1])


def _take_over(path: Path, stale: bytes) -> None:
    """Remove the stale lock ``path`` if it still holds ``stale``: it is renamed away first (atomic,
    so of two trainers taking it over at once one gets it), then deleted; a fresh lock renamed by
    mistake is put back."""
    aside = path.with_name(f".{path.name}.stale.{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return  # another trainer took it over first
    try:
        if aside.read_bytes() != stale:  # a new holder's lock: put it back unless yet another exists
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
    finally:
        aside.unlink(missing_ok=True)


def _create_with(path: Path, text: bytes) -> None:
    """Create ``path`` holding ``text`` in one step (FileExistsError if it exists): the text goes to a
    temporary file that is then hard-linked to ``path``, so a trainer killed at any instant leaves
    no lock or a whole one (never an empty lock that nobody could tell from a starting trainer)."""
    from ..checkpoint import remove_stale_temps, write_temp

    remove_stale_temps(path)
    tmp = write_temp(path, text)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class RunLock:
    """A held lock; ``release()`` (idempotent) removes its file."""

    def __init__(self, path: Path | None):
        self.path = path

    def release(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


def acquire(folder: Path) -> RunLock:
    """Take the lock of ``folder`` (taking over a stale one), or raise a one-line TrainingError
    naming the trainer that holds it."""
    path = folder / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
          "time": time.time()}
    text = (json.dumps(me) + "\n").encode()
    for _ in range(20):
        try:
            _create_with(path, text)
        except FileExistsError:
            found = _read(path)
            if found is None:
                continue  # released between the two calls: try again
            raw, info = found
            if _live(path, info):
                raise _busy(path, info) from None
            _take_over(path, raw)
            continue
        except OSError as exc:
            raise TrainingError(f"{path}: cannot create the run folder's lock ({exc.strerror or exc})") from None
        return RunLock(path)
    raise TrainingError(f"{path}: the lock keeps changing hands; is another training starting in {folder}?")


def hold(folder: Path, ranks: Any, check: Callable[[], None] = lambda: None) -> RunLock:
    """The lock for this process: rank 0 takes it, runs ``check`` while holding it, and tells the
    other ranks whether both went well (each raises the same one-line TrainingError if not)."""
    lock, problem = RunLock(None), None
    try:
        if ranks.is_main:
            try:
                lock = acquire(folder)
                check()
            except TrainingError as exc:
                lock.release()
                problem = str(exc)
        problem = ranks.broadcast_json(problem)
    except BaseException:  # Ctrl-C while taking it
        lock.release()
        raise
    if problem is not None:
        raise TrainingError(problem)
    return lock
