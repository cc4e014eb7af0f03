"""Whether a run compiles its model: the ``train.compile`` setting made real.

``model.compile()`` (:meth:`~graphmeta.GraphMetaLearner.compile`) runs the meta-step through
``torch.compile``: the same values and meta-gradients, and a one-time cost before its first step
(for a 64-node graph on 2 CPU cores, 45-51 s on a cold compile cache and 7.7 s on a warm one).
Whether the compiled step is faster depends on the work: there a compiled sinusoid step (one small
MLP) took 4.49 ms against 9.59 eager, while a 64-node graph's took 77.03 ms against 54.42, since the
compiled form does not keep the eager engine's low-rank fast weights (``python benchmarks/compiled.py``,
7 December; see :mod:`graphmeta.adapt.inner_loop`). So ``train.compile``:

* ``true`` compiles before the first step; ``false`` stays eager;
* ``auto`` (the default) measures: it times :data:`TRIAL_STEPS` eager steps (after the first); where
  the rest of the run at that pace would take under :data:`AUTO_MIN_SECONDS`, it stays eager (a
  compile could not pay for itself); otherwise it compiles, times as many compiled steps, and keeps
  whichever was faster. A run on several processes stays eager under ``auto`` (each process would
  compile, and all must agree).

The run compiles the meta-step only: validation and evaluation adapt at several step counts and
batch sizes, each of which would be a compile of its own. The summary's ``compile`` record says
what was decided and the times it was decided on (:meth:`RunCompilation.record`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

#: Eager steps, then compiled steps, that ``auto`` times (after the first of each, which warms up).
TRIAL_STEPS = 10
#: ``auto`` tries compiling only a run whose remaining eager time is at least this (seconds).
AUTO_MIN_SECONDS = 600.0


@dataclass
class RunCompilation:
    """The ``train.compile`` decision of one run (module docstring): :meth:`start` before the first
    step, :meth:`after_step` with each step's wall time and the steps left after it."""

    model: Any
    setting: bool | str
    processes: int
    eager_steps: list[float] = field(default_factory=list)
    compiled_steps: list[float] = field(default_factory=list)
    compile_s: float | None = None
    decision: str | None = None

    def start(self) -> None:
        if self.setting is True:
            self.model.compile(adapt=False)
            self.decision = "compiled (train.compile: true)"
        elif self.setting is False:
            self.decision = "eager (train.compile: false)"
        elif self.processes > 1:
            self.decision = "eager (auto: a run on several processes)"

    def after_step(self, seconds: float, remaining: int) -> None:
        if self.decision is not None:
            if self.compile_s is None and self.compiled:  # compiled from the start: the first step compiles
                self.compile_s = seconds
            return
        if not self.model.is_compiled:
            self.eager_steps.append(seconds)
            if len(self.eager_steps) <= TRIAL_STEPS:
                return
            if self._median(self.eager_steps) * remaining < AUTO_MIN_SECONDS:
                self.decision = "eager (auto: the run is too short to repay a compile)"
                return
            self.model.compile(adapt=False)
        elif self.compile_s is None:
            self.compile_s = seconds
        else:
            self.compiled_steps.append(seconds)
            if len(self.compiled_steps) <= TRIAL_STEPS:
                return
            if self._median(self.compiled_steps) < self._median(self.eager_steps):
                self.decision = "compiled (auto: faster per step)"
            else:
                self.model.eager()
                self.decision = "eager (auto: compiled steps were not faster)"

    @property
    def compiled(self) -> bool:
        return bool(self.model.is_compiled)

    def record(self) -> dict[str, Any]:
        """What the summary keeps: the decision (``None``: still timing when the run ended), whether
        the model ran compiled at the end, the compile's wall time and the median step times."""
        def median(times: list[float]) -> float | None:
            return round(self._median(times), 5) if len(times) > 1 else None

        return {"decision": self.decision, "compiled": self.compiled,
                "compile_s": None if self.compile_s is None else round(self.compile_s, 2),
                "eager_step_s": median(self.eager_steps), "compiled_step_s": median(self.compiled_steps)}

    @staticmethod
    def _median(times: list[float]) -> float:
        return statistics.median(times[1:])
