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

Outside ``fit`` (an evaluation, say) a signal ends the command where it stands, as an
:class:`Interrupted` (the class :class:`RunInterrupted` refines) whose one line says what was under
way and what was kept (:func:`reported_as`); the command line prints it and exits with
``128 + signal`` too, turning SIGTERM into such an interrupt as Python turns SIGINT into a
:class:`KeyboardInterrupt` (:func:`raise_interrupted`). Under ``--nproc`` the launching process
hands each signal on to its processes (:mod:`.launch`), so they stop alike.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A signal (``signal_number``, SIGINT or SIGTERM) ended a command; the message says what was
    under way and what was kept. ``exit_status`` is ``128 + signal_number``."""

    def __init__(self, message: str, signal_number: int = signal.SIGINT) -> None:
        self.signal_number = signal_number
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:  # the processes of --nproc hand it to their launcher
        return type(self), (str(self), self.signal_number)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name

    @property
    def exit_status(self) -> int:
        """What a shell expects of a process ended by the signal: ``128 + signal_number``."""
        return 128 + self.signal_number


class RunInterrupted(Interrupted):
    """A signal ended ``fit``: after checkpointing the finished unit, or (``immediate``) at once.

    ``signal_number`` is the first signal received; ``step`` the unit the run had finished;
    ``checkpoint`` the ``last.pt`` to resume from and ``checkpointed_step`` the unit it holds
    (``None``: the run has none yet); ``exit_status`` is ``128 + signal_number``.
    """

    def __init__(self, signal_number: int, run_path: str, unit: str, step: int, checkpoint: str,
                 checkpointed_step: int | None, immediate: bool) -> None:
        self.signal_number, self.run_path, self.unit, self.step = signal_number, run_path, unit, step
        self.checkpoint, self.checkpointed_step, self.immediate = checkpoint, checkpointed_step, immediate
        super().__init__(self.describe(), signal_number)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.signal_number, self.run_path, self.unit, self.step, self.checkpoint,
                             self.checkpointed_step, self.immediate)

    def describe(self) -> str:
        """One line: the signal, where the run stopped and what its checkpoint holds."""
        if not self.immediate:
            return (f"{self.signal_name} received: run {self.run_path} stopped after {self.unit} {self.step}, "
                    f"saved in {self.checkpoint}")
        kept = ("it has no checkpoint yet" if self.checkpointed_step is None
                else f"its checkpoint {self.checkpoint} holds {self.unit} {self.checkpointed_step}")
        return f"a second signal stopped run {self.run_path} at once, during {self.unit} {self.step + 1}; {kept}"


def raise_interrupted(number: int, frame: FrameType | None) -> None:
    """The SIGTERM handler of the command line: an :class:`Interrupted` where the main thread
    stands, as Python's own raises a :class:`KeyboardInterrupt` on SIGINT (a fitting run handles
    both itself, :class:`SignalStop`)."""
    raise Interrupted(f"{signal.Signals(number).name} received", number)


@contextmanager
def reported_as(under_way: str, kept: str) -> Iterator[None]:
    """A signal inside (a :class:`KeyboardInterrupt`, but not a :class:`RunInterrupted`, which says
    more) becomes an :class:`Interrupted` with the line ``"<signal> received during <under_way>;
    <kept>"``, e.g. ``reported_as("the evaluation of runs/x", "nothing of it was written")``."""
    try:
        yield
    except RunInterrupted:
        raise
    except KeyboardInterrupt as interrupt:
        number = getattr(interrupt, "signal_number", signal.SIGINT)
        raise Interrupted(f"{signal.Signals(number).name} received during {under_way}; {kept}", number) from None


class SignalHandlers:
    """``self._handle`` as the handler of SIGINT and SIGTERM while the context is open, the previous
    handlers back on exit; outside the main thread, where Python cannot install handlers, nothing."""

    _previous: dict[int, Any]

    def __enter__(self) -> Any:
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in HANDLED_SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number: int, frame: FrameType | None) -> None:
        raise NotImplementedError


class SignalStop(SignalHandlers):
    """The handlers of SIGINT and SIGTERM while ``learner`` (a :class:`~.run_loop.RunLoop`) fits,
    as a context manager (see the module docstring). ``received``: the first signal, ``None``
    before one."""

    def __init__(self, learner: Any) -> None:
        self.learner = learner
        self.received: int | None = None

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
