"""One writer per run directory: a lock that a training or evaluation holds while it writes.

Two processes writing one run (a second ``graphmeta train --resume`` started while the first still
runs, an evaluation while the run trains) would interleave ``metrics.jsonl`` records and replace
each other's checkpoints and ``summary.json`` sections. So the writer of a run (rank 0) holds an
exclusive lock on ``RUN/.writer.lock`` from the start of ``fit`` or ``evaluate`` to its end, and
a second writer is refused at once with a ConfigError naming the process that holds it.

The lock is the operating system's (``fcntl.flock``; ``msvcrt.locking`` on Windows), held by an
open file: a writer that is killed, even with SIGKILL, releases it with its process, so a stale
lock never blocks a resume. The file stays and is reused; what it holds (the holder's pid, host
and start time) is only a note for the message.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import strftime
from typing import Any

from ..errors import ConfigError

if os.name == "nt":
    import msvcrt
else:
    import fcntl

LOCK_FILE = ".writer.lock"


class RunLock:
    """The writer's lock of the run directory ``run_path`` (see the module docstring)."""

    def __init__(self, run_path: str | Path) -> None:
        self.path = Path(run_path) / LOCK_FILE
        self._descriptor: int | None = None

    def __repr__(self) -> str:
        return f"RunLock({str(self.path)!r}, held={self._descriptor is not None})"

    def acquire(self) -> None:
        """Take the lock, or raise a ConfigError naming the process that holds it."""
        if self._descriptor is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(descriptor):
            holder = _holder(descriptor)
            os.close(descriptor)
            raise ConfigError(f"run {self.path.parent} is being written by another process ({holder}): wait until "
                              "it ends (or stop it), or give this run another name (train.name)")
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()} since {strftime('%Y-%m-%d %H:%M:%S')}"
                 .encode())
        self._descriptor = descriptor

    def release(self) -> None:
        """Give the lock up (nothing when it is not held)."""
        if self._descriptor is None:
            return
        descriptor, self._descriptor = self._descriptor, None
        _unlock(descriptor)
        os.close(descriptor)


@contextmanager
def writing_run(run_path: str | Path, parallel: Any) -> Iterator[None]:
    """Hold the lock of ``run_path`` in the writer process of ``parallel`` (a
    :class:`~.distributed.DataParallelGroup`) while the block runs; a refusal is raised in every process."""
    lock = RunLock(run_path)
    parallel.from_writer(lock.acquire)
    try:
        yield
    finally:
        lock.release()


def _try_lock(descriptor: int) -> bool:
    try:
        if os.name == "nt":
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        else:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(descriptor: int) -> None:
    if os.name == "nt":
        os.lseek(descriptor, 0, os.SEEK_SET)
        msvcrt.locking(descriptor, msvcrt.LK_UNLCK, 1)
    else:
        fcntl.flock(descriptor, fcntl.LOCK_UN)


def _holder(descriptor: int) -> str:
    """The note the holder wrote, or a placeholder where it cannot be read (Windows locks the bytes)."""
    try:
        note = os.read(descriptor, 200).decode("utf-8", errors="replace").strip()
    except OSError:
        note = ""
    return note or "pid unknown"
