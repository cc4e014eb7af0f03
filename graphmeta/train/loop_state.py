"""`LoopState`: where a run stands, the part of a checkpoint that the run loop itself keeps.

The loop's counters after unit ``step``: the meta-updates taken (``updates``, the skipped ones
included, so the schedule and MAML++'s annealing go on from ``updates / total_updates``) and
skipped; the best validation so far (``best_loss`` at ``best_step``) and how many validations
since brought none lower (``stale_validations``, compared with ``train.early_stopping_patience``);
the log window; and the wall time before the last resume. A checkpoint holds them as its
``step`` and ``loop`` entries, so a resumed run goes on from exactly this state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from .metric_window import MetricWindow


@dataclass
class LoopState:
    """The counters of a run loop (see the module docstring). ``world_size`` is that of the run
    whose checkpoint was restored. Not checkpointed: ``checkpointed_step``, the unit of the last
    ``last.pt`` this process wrote or resumed from (``None``: none yet), and ``fit_started``,
    the clock when the running ``fit`` started (``None``: none runs)."""

    step: int = 0
    updates: int = 0
    skipped_updates: int = 0
    best_step: int | None = None
    best_loss: float = math.inf
    stale_validations: int = 0
    early_stopped: bool = False
    window: MetricWindow = field(default_factory=MetricWindow)
    elapsed_before: float = 0.0
    world_size: int = 1
    checkpointed_step: int | None = None
    fit_started: float | None = None

    @property
    def elapsed_s(self) -> float:
        """Wall time of the run: before the last resume (up to its checkpoint) plus since."""
        return self.elapsed_before + (0.0 if self.fit_started is None else perf_counter() - self.fit_started)

    def start_clock(self) -> None:
        """A ``fit`` starts: its time counts from now."""
        self.fit_started = perf_counter()

    def stop_clock(self) -> None:
        """A ``fit`` ended: its time joins ``elapsed_before``."""
        self.elapsed_before, self.fit_started = self.elapsed_s, None

    def record_validation(self, loss: float, patience: int | None) -> bool:
        """Count the validation of the current unit: ``True`` when ``loss < best_loss`` (a new best);
        otherwise one more stale validation, and ``early_stopped`` once ``patience`` of them passed."""
        if loss < self.best_loss:
            self.best_step, self.best_loss, self.stale_validations = self.step, loss, 0
            return True
        self.stale_validations += 1
        self.early_stopped = patience is not None and self.stale_validations >= patience
        return False

    def skip_update(self) -> None:
        """Count a meta-update skipped as non-finite (``train.on_nonfinite: skip``)."""
        self.skipped_updates += 1
        self.window.skipped += 1

    def state_dict(self, elapsed_s: float, world_size: int) -> dict[str, Any]:
        """The checkpoint's ``loop`` entry, with the run's wall time and world size so far."""
        return {"updates": self.updates, "skipped_updates": self.skipped_updates, "best_step": self.best_step,
                "best_loss": self.best_loss, "stale_validations": self.stale_validations,
                "early_stopped": self.early_stopped, "window": self.window.state_dict(), "elapsed_s": elapsed_s,
                "world_size": world_size}

    def load_state_dict(self, step: int, loop: Mapping[str, Any]) -> None:
        """Restore the checkpoint's ``step`` and ``loop`` entries (a checkpoint older than the
        world size was written by one process)."""
        self.step = int(step)
        self.updates, self.skipped_updates = int(loop["updates"]), int(loop["skipped_updates"])
        self.best_step, self.best_loss = loop["best_step"], float(loop["best_loss"])
        self.stale_validations = int(loop["stale_validations"])
        self.early_stopped = bool(loop["early_stopped"])
        self.window.load_state_dict(loop["window"])
        self.elapsed_before = float(loop["elapsed_s"])
        self.world_size = int(loop.get("world_size", 1))


def forwarded(name: str) -> property:
    """A read-only property of a learner that reads ``learner.loop_state.<name>``."""
    return property(lambda learner: getattr(learner.loop_state, name),
                    doc=f"``{name}`` of the learner's :class:`LoopState` (read only).")
