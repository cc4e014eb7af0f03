"""Starting a data-parallel run on this machine: what ``graphmeta train CONFIG --nproc N`` does.

:func:`run_on_processes` starts ``N`` processes through torch's own elastic launcher, exactly as
``torchrun --standalone --nproc-per-node=N`` would (a rendezvous on a free local port, each
process given ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``),
and each of them calls the function it is given; :mod:`.distributed` does the rest. Unless
``OMP_NUM_THREADS`` is set, each process gets cores / ``N`` of them (at least 1; torchrun sets 1),
so the processes do not compete for the cores. Runs over several machines use ``torchrun`` itself
(README, "Scaling out").

**Signals.** Each process leaves the launcher's process group as it starts, so a Ctrl-C at the
terminal (or a SIGTERM to the group) reaches the launcher alone, which hands it on to each
process once (:class:`HandOnSignals`), as if each had received it: a training run finishes its
step, writes ``last.pt`` and ends in every process with the same
:class:`~.interrupts.RunInterrupted`, which each process returns and :func:`run_on_processes`
raises, as one process would. A second signal kills the processes at once (one of them could be
caught in a collective its partner left, where no Python code runs): :class:`ProcessesStopped`.
So does the launcher itself when, after a signal, one process has ended and another has not
:data:`GRACE_S` seconds later: that one waits for a partner that is gone (the signal caught the
ended one before its run could take it at a unit's end, while it started, say), and would wait for
the process group's timeout, half an hour. Every file they had written stays whole, as each is
written atomically (:mod:`.checkpoint`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType, TracebackType
from typing import Any

from tqdm.auto import tqdm

from ..errors import ConfigError, GraphMetaError
from ..validation import PositiveInt, check_arguments
from .interrupts import HANDLED_SIGNALS, Interrupted, SignalHandlers, raise_interrupted

#: The loggers of torch's launcher that report a process's death (with a traceback) and the ending
#: of the others: quiet once :class:`HandOnSignals` has killed them.
TORCH_PROCESS_LOGGERS = ("torch.distributed.elastic.multiprocessing.api", "torch.multiprocessing.spawn")
#: After a signal, how long the processes still running may take once one of them has ended, before
#: the launcher kills them (torch's own launcher gives its processes 30 s to end on a signal too).
GRACE_S = 30.0


def run_on_processes(nproc: PositiveInt, function: Callable[..., Any], *args: Any, backend: str | None = None,
                     what: str = "running") -> Any:
    """``function(*args)`` in ``nproc`` processes of one data-parallel run on this machine; the
    value rank 0 returned. A GraphMetaError raised there is raised here (every process raises the
    same), and so is a signal's :class:`KeyboardInterrupt` (module docstring); any other failure is
    torch's ``ChildFailedError``, naming the process and its traceback. First a line says ``what``
    runs, on how many processes, with which collective ``backend`` and how many CPU threads each."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    nproc = check_arguments(run_on_processes, {"nproc": nproc}, "run_on_processes()")["nproc"]
    if os.environ.get("WORLD_SIZE"):
        raise ConfigError("this process already belongs to a run of several processes (WORLD_SIZE is set, as torchrun "
                          "sets it): leave out --nproc under torchrun")
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    threads = os.environ["OMP_NUM_THREADS"]
    print(f"{what} on {nproc} processes of this machine (torch elastic launch, backend {backend or 'auto'}, "
          f"{threads} CPU thread{'' if threads == '1' else 's'} each)", flush=True)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          signals_to_handle="SIGHUP,SIGQUIT")  # SIGINT and SIGTERM: HandOnSignals
    ended = multiprocessing.get_context("spawn").Value("i", 0)  # how many processes have returned
    with HandOnSignals(ended, nproc, GRACE_S) as signals:
        try:
            results = elastic_launch(config, _call)(ended, function, *args)
        except ChildFailedError:
            if not signals.killed:
                raise
            raise ProcessesStopped(signals.stopped(nproc), signals.killed) from None
    outcome = next((value for value in results.values() if isinstance(value, KeyboardInterrupt)), results[0])
    if isinstance(outcome, (GraphMetaError, KeyboardInterrupt)):
        raise outcome
    return outcome


class ProcessesStopped(Interrupted):
    """A second signal killed the processes of :func:`run_on_processes` (module docstring)."""


class HandOnSignals(SignalHandlers):
    """While :func:`run_on_processes` waits for its processes, as a context manager: a SIGINT or
    SIGTERM goes on to each of them, a second one kills them (``killed``: that signal, ``None``
    before); one while none runs raises :class:`~.interrupts.Interrupted` here. Given ``ended``
    (a shared counter each of the ``nproc`` processes raises as it returns), it also kills them
    when, after the first signal, some have ended and the others have not ``grace_s`` seconds
    later (``killed``: the first signal; ``stuck``: how many were still running). Outside the
    main thread, where Python cannot install handlers, it does nothing."""

    def __init__(self, ended: Any = None, nproc: int = 0, grace_s: float = GRACE_S) -> None:
        self.killed: int | None = None
        self.stuck = 0
        self._ended, self._nproc, self._grace_s = ended, nproc, grace_s
        self._received: int | None = None
        self._closed = threading.Event()
        self._log_levels = {name: logging.getLogger(name).level for name in TORCH_PROCESS_LOGGERS}

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        super().__exit__(kind, error, traceback)
        self._closed.set()
        for name, level in self._log_levels.items():
            logging.getLogger(name).setLevel(level)

    def stopped(self, nproc: int) -> str:
        """The line that says how the killed processes were stopped."""
        assert self.killed is not None, "no process was killed"
        name = signal.Signals(self.killed).name
        if not self.stuck:
            return f"a second {name} stopped the {nproc} processes at once; every file they had written is whole"
        ended = nproc - self.stuck
        return (f"{name} received: {ended} of the {nproc} processes ended on it, the other{'s' * (self.stuck > 1)} "
                f"had not {self._grace_s:g} s later (waiting for {'it' if ended == 1 else 'them'}) and "
                f"{'were' if self.stuck > 1 else 'was'} killed; every file they had written is whole")

    def _handle(self, number: int, frame: FrameType | None) -> None:
        processes = multiprocessing.active_children()
        if not processes:
            raise Interrupted(f"{signal.Signals(number).name} received while no process was running (before they "
                              "started or after they ended)", number)
        if self._received is not None:
            self._kill(processes, number)
            return
        self._received = number
        _send(processes, number)
        if self._ended is not None:
            threading.Thread(target=self._watch, args=(processes,), name="graphmeta-stop-watch", daemon=True).start()

    def _watch(self, processes: list[BaseProcess]) -> None:
        """After the first signal: kill ``processes`` once some have ended and the others have not
        within the grace period."""
        first_ended: float | None = None
        while not self._closed.wait(0.2) and self.killed is None:
            ended = self._ended.value
            if not 0 < ended < self._nproc:
                continue
            first_ended = first_ended if first_ended is not None else time.monotonic()
            if time.monotonic() - first_ended > self._grace_s:
                self.stuck = self._nproc - ended
                self._kill(processes, self._received)  # type: ignore[arg-type]
                return

    def _kill(self, processes: list[BaseProcess], number: int) -> None:
        self.killed = number
        for name in TORCH_PROCESS_LOGGERS:  # their deaths are ours, not failures to report
            logging.getLogger(name).setLevel(logging.CRITICAL)
        _send(processes, signal.SIGKILL)


def _send(processes: list[BaseProcess], number: int) -> None:
    for process in processes:
        try:
            os.kill(process.pid, number)  # type: ignore[arg-type]
        except ProcessLookupError:  # it ended meanwhile
            pass


def _call(ended: Any, function: Callable[..., Any], *args: Any) -> Any:
    """One process of :func:`run_on_processes`, out of the launcher's process group (module
    docstring): a GraphMetaError or a signal's KeyboardInterrupt is returned, for the launcher to
    raise; ``ended`` counts the processes that have returned (:class:`HandOnSignals`)."""
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    signal.signal(signal.SIGTERM, raise_interrupted)
    # tqdm's default lock is a semaphore of the system, which a killed process would leave behind
    tqdm.set_lock(threading.RLock())
    try:
        return function(*args)
    except (GraphMetaError, KeyboardInterrupt) as error:
        return error
    finally:
        for number in HANDLED_SIGNALS:  # done: a signal handed on now must not turn its return into a failure
            signal.signal(number, signal.SIG_IGN)
        with ended.get_lock():
            ended.value += 1
