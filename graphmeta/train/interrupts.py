"""Stopping a run on Ctrl-C or a termination request without losing its work.

While ``fit`` runs in the main thread, the first SIGINT (Ctrl-C) or SIGTERM (``kill``, a batch
scheduler's time limit) asks the loop to stop (:meth:`~.run_loop.RunLoop.request_stop`): the unit
of work under way finishes, ``checkpoints/last.pt`` is written (atomically, :mod:`.checkpoint`)
with the summary (status ``stopped``, the signal as ``stop_reason``), and then ``fit`` raises
:class:`RunInterrupted`, whose message says how to go on. A second signal while that is under way
stops at once: :class:`RunInterrupted` is raised where the process stands (``immediate``), and the
run keeps its last checkpoint, which a write cut short never replaces.

``graphmeta train`` prints the message with its ``--resume`` command and exits with status
``128 + signal`` (130 for SIGINT, 143 for SIGTERM), as a shell expects of a process that a
signal ended. :class:`RunInterrupted` is a :class:`KeyboardInterrupt`, so code that does not
know graphmeta treats it as the interrupt it is (``except Exception`` does not swallow it).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """A signal ended ``fit``: after checkpointing the finished unit, or (``immediate``) at once.

    ``signal_number`` is the first signal received; ``step`` the unit the run had finished;
    ``checkpoint`` the ``last.pt`` to resume from and ``checkpointed_step`` the unit it holds
    (``None``: the run has none yet); ``exit_status`` is ``128 + signal_number``.
    """

    def __init__(self, signal_number: int, run_path: str, unit: str, step: int, checkpoint: str,
                 checkpointed_step: int | None, immediate: bool) -> None:
        self.signal_number, self.run_path, self.unit, self.step = signal_number, run_path, unit, step
        self.checkpoint, self.checkpointed_step, self.immediate = checkpoint, checkpointed_step, immediate
        super().__init__(self.describe())

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name

    @property
    def exit_status(self) -> int:
        """What a shell expects of a process ended by the signal: ``128 + signal_number``."""
        return 128 + self.signal_number

    def describe(self) -> str:
        """One line: the signal, where the run stopped and what its checkpoint holds."""
        if not self.immediate:
            return (f"{self.signal_name} received: run {self.run_path} stopped after {self.unit} {self.step}, "
                    f"saved in {self.checkpoint}")
        kept = ("it has no checkpoint yet" if self.checkpointed_step is None
                else f"its checkpoint {self.checkpoint} holds {self.unit} {self.checkpointed_step}")
        return f"a second signal stopped run {self.run_path} at once, during {self.unit} {self.step + 1}; {kept}"


class SignalStop:
    """The handlers of SIGINT and SIGTERM while ``learner`` (a :class:`~.run_loop.RunLoop`) fits,
    as a context manager (see the module docstring); outside the main thread, where Python cannot
    install handlers, it does nothing. ``received``: the first signal, ``None`` before one."""

    def __init__(self, learner: Any) -> None:
        self.learner = learner
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in HANDLED_SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def interruption(self, immediate: bool) -> RunInterrupted:
        """The :class:`RunInterrupted` of the signal received, where the learner stands now."""
        learner = self.learner
        assert self.received is not None, "no signal was received"
        return RunInterrupted(self.received, str(learner.run.path), learner.unit, learner.step, str(learner.run.last),
                              learner.loop_state.checkpointed_step, immediate)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise self.interruption(immediate=True)
        self.received = number
        self.learner.request_stop(f"{signal.Signals(number).name} received during {self.learner.unit} "
                                  f"{self.learner.step + 1}")
