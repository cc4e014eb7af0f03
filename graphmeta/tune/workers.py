"""The workers of a study: parallel workers, and what happens to a trial whose worker dies.

**Parallel workers.** Every ``graphmeta tune`` process is a worker: it takes trials from the
study's storage until the study has ``tune.n_trials`` trials, runs them and records them there.
``--workers N`` starts ``N - 1`` more worker processes on the study (:func:`start_workers`);
starting the command in N terminals does the same. Workers take trials one at a time under a
lock file in the study's folder (:class:`TrialLock`), so the study ends with exactly the number
of trials asked for (Optuna's ``MaxTrialsCallback`` checks after a trial ends, and N workers
overshoot by up to N - 1).

**A worker that dies** (kill -9, a crash, the machine going down) leaves its trial ``RUNNING``
in the storage. Each trial records its worker (host, process id and the process's start time, so
a process id used again later is not mistaken for it); before any worker takes a new trial it
marks failed every running trial whose worker, on this host, has ended
(:func:`fail_interrupted_trials`), with ``failure: interrupted ...``. Failed trials do not count
towards ``n_trials``, so the study runs one trial more in its place: for ``random`` and ``tpe``
a new draw, for ``fixed`` and ``grid`` the same setting again. Finished trials are never
touched, so none is lost or counted twice. A trial whose worker ran on another machine is left
to a worker on that machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import optuna
from optuna.storages.journal import JournalFileOpenLock
from optuna.trial import TrialState


def _process_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first, start time at 19);
    ``[]`` when the process does not exist, ``None`` where there is no ``/proc``."""
    if not Path("/proc/self/stat").is_file():
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return text[text.rindex(")") + 2:].split()


def this_worker() -> dict[str, Any]:
    """The identity a trial records of the process that runs it."""
    fields = _process_stat(os.getpid())
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": fields[19] if fields else None}


def worker_has_ended(worker: dict[str, Any]) -> bool:
    """Whether the process ``worker`` (from :func:`this_worker`) has ended: only known on its own host."""
    if worker.get("host") != socket.gethostname():
        return False
    fields = _process_stat(worker["pid"])
    if fields is not None:
        return not fields or fields[0] in ("Z", "X") or fields[19] != worker["started"]
    try:
        os.kill(worker["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    return False


def fail_interrupted_trials(study: optuna.Study) -> list[int]:
    """Mark failed the running trials of ``study`` whose worker has ended; their numbers.

    Call it holding the :class:`TrialLock`: a trial with no worker recorded was then left by a
    worker that died between creating it and recording itself, which it does under the lock.
    """
    interrupted = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if worker is None or worker_has_ended(worker):
            who = f"worker {worker['pid']} on {worker['host']}" if worker else "its worker"
            # Optuna has no public call to annotate a trial that another process created.
            study._storage.set_trial_user_attr(trial._trial_id, "failure",  # noqa: SLF001
                                               f"interrupted: {who} ended during the trial")
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            interrupted.append(trial.number)
    return interrupted


class TrialLock:
    """The lock workers hold while they take a trial (a lock file in the study's folder; a lock
    left by a killed worker is broken after 30 seconds)."""

    def __init__(self, folder: Path) -> None:
        self.lock = JournalFileOpenLock(str(folder / "trials"))

    def __enter__(self) -> TrialLock:
        self.lock.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.lock.release()


def start_workers(count: int, study_config: Path) -> list[subprocess.Popen]:
    """``count`` worker processes ``graphmeta tune STUDY_CONFIG --worker`` (trials only, no results)."""
    return [subprocess.Popen([sys.executable, "-m", "graphmeta", "tune", str(study_config), "--worker"])
            for _ in range(count)]
