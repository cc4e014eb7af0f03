"""The run loop: ONE loop for episodic (:class:`~graphmeta.train.Trainer`) and online
(:class:`~graphmeta.train.OnlineMetaLearner`) meta-training, with hooks.

A run is a sequence of *units* of work: a batch step (one meta-update on a meta-batch), or an
arriving online task (score it, store it, ``M`` meta-updates on the buffer). :class:`RunLoop`
owns everything around the unit; :meth:`RunLoop.fit` is::

    start the run directory, or resume it from checkpoints/last.pt
    a new run that validates: validate its starting point
    for unit = step + 1 .. total, until early stopping or a stop request:
        run_unit()          its meta-updates go through outer_step(): one Adam step and one
                            step of the schedule each; a non-finite loss or gradient stops
                            the run (TrainingError) or skips the update (train.on_nonfinite)
        hooks.after_step(StepEvent)                           True: stop after this unit
        every val_every units and at the end, unless stopping: validate; a new best writes
                            best.pt, early_stopping_patience validations without one end the run
            hooks.after_validation(ValidationEvent)           True: stop (a tuner prunes)
        every log_every units and at the end: a record to metrics.jsonl, the means of the
                            units' metrics since the last record
        every checkpoint_every units and at the end: last.pt
    summary.json["training"] (status completed, early stopped or stopped, :mod:`.training_summary`);
    a learner that validates ends holding the best weights

Every checkpoint (last.pt and best.pt, written atomically by :mod:`.checkpoint`) is written
between ``hooks.before_checkpoint(CheckpointEvent)`` (``False``: skip the write in this process)
and ``hooks.after_checkpoint(CheckpointEvent)``. :meth:`RunLoop.request_stop`, called during
``fit`` from anywhere, stops like a hook returning ``True``: after the current unit, with a final
``last.pt`` and the reason in the summary. The hooks themselves are described in :mod:`.hooks`.

**Resume.** ``fit(resume=True)`` goes on from ``checkpoints/last.pt`` under the run's own config,
bit for bit; a changed config is refused unless ``allow_changes`` accepts and records it
(:mod:`.run_start`). The counters a checkpoint keeps are the loop's :class:`~.loop_state.LoopState`.

**A learner** subclasses :class:`RunLoop` and supplies only what differs: the class attributes
``unit``, ``split`` (of its ``metrics.jsonl`` records), ``validates``, ``sections`` (its own
run-config sections beyond ``train``) and ``extra_checkpoint_keys``; a constructor taking the
typed ``train`` section and its own (as :meth:`~.run_state.RunState.from_config` passes them) or
their keys; the methods :meth:`~RunLoop.total_units` and :meth:`~RunLoop.run_unit`; and where they
apply :meth:`~RunLoop.validate`, :meth:`~.run_state.RunState.extra_state` /
:meth:`~.run_state.RunState.load_extra_state`, :meth:`~RunLoop.summary_fields` and ``log_every``.
What a run is made of and its checkpoint are :class:`~.run_state.RunState`'s; the evaluation of a
run and its baselines are :mod:`.evaluation`'s.

**Several processes** (torchrun, :mod:`.distributed`). ``parallel`` is this process's
:class:`~.distributed.DataParallelGroup` (one process without torchrun's environment). Only the
writer, rank 0, opens or resumes the run directory, validates, logs, writes checkpoints (the
:class:`~.distributed.RankZeroCheckpoints` hook skips them elsewhere), the summary and
evaluations, and shows the progress bar; every other process takes the writer's start state,
validation records and summary from it (``parallel.from_writer``), trains on its share of each
meta-batch through the model's DDP replica, and stops after the same unit as the others
(``parallel.agree_on_stop``, after the hooks of each unit and validation). A stop request (a
signal) may arrive in one process at any moment, but only the agreement turns it into
``stop_reason``, which alone decides what the loop does next: a request that arrives after a
unit's agreement (during its checkpoint, say) is acted on after the next unit, in every process.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from typing import Any, ClassVar

from tqdm.auto import tqdm

from ..errors import DistributionShiftWarning, TrainingError
from ..model import GraphMetaLearner
from .compilation import RunCompilation
from .config import EvaluateConfig, TrainConfig
from .device import thread_count
from .distributed import RankZeroCheckpoints, Replica
from .episode_sampler import Family
from .evaluation import EvaluationReport, evaluate_run, train_ablation
from .hooks import CheckpointEvent, StepEvent, ValidationEvent, call_hooks, check_hook
from .interrupts import SignalStop
from .outer_step import MetaUpdate, meta_update
from .run_lock import writing_run
from .run_start import start_run
from .run_state import RunState
from .training_summary import write_training_summary


class RunLoop(RunState):
    """The run loop both learners share (see the module docstring); not used on its own.

    A learner is built from typed configs, ``Learner(model, family, train, **sections)`` (a
    :class:`~.config.TrainConfig` and the learner's own sections, e.g. ``online=OnlineConfig(...)``),
    as :meth:`~RunState.from_config` passes them on, or from their keys as keyword arguments. Its
    parts (run directory, optimizer, task stream, counters) are those of :class:`~.run_state.RunState`;
    ``hooks`` are added with :meth:`add_hook`.
    """

    split: ClassVar[str]
    validates: ClassVar[bool] = False

    def __init__(self, model: GraphMetaLearner, family: Family, config: TrainConfig, stream_batch_size: int,
                 total_updates: int, hooks: Iterable[Any] = ()) -> None:
        super().__init__(model, family, config, stream_batch_size, total_updates)
        self.hooks: list[Any] = []
        if self.parallel.world_size > 1:
            self.add_hook(RankZeroCheckpoints(self.parallel))
        for hook in hooks:
            self.add_hook(hook)
        self.stop_reason: str | None = None
        self._stop_request: str | None = None
        self._replica: Replica | None = None
        self._details: dict[str, Any] = {}
        self._postfix: dict[str, str] = {}
        #: Whether the run compiles its model (:mod:`.compilation`); set when ``fit`` starts.
        self.compilation: RunCompilation | None = None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(run={str(self.run.path)!r}, {self.unit}={self.step}/{self.total_units()}, "
                f"{self.model!r})")

    # ------------------------------------------------------- what a learner supplies
    def total_units(self) -> int:
        """The units of work of the whole run."""
        raise NotImplementedError

    def run_unit(self) -> tuple[dict[str, float], dict[str, Any]]:
        """One unit of work; its meta-updates go through :meth:`outer_step`. Returns its metrics
        (numbers, averaged over the log window and given to ``after_step`` hooks) and details
        (written as they are into the log record of the window this unit ends)."""
        raise NotImplementedError

    def validate(self) -> dict[str, Any]:
        """The validation record of the current state; ``loss`` is the value to minimise."""
        raise NotImplementedError

    def summary_fields(self) -> dict[str, Any]:
        """What the learner adds to the training summary."""
        return {}

    def begin_run(self) -> None:
        """What the learner does to its model before the first step of a new run (never on resume,
        where the checkpoint holds the state); on the writer only, whose state the other processes
        take. Nothing by default."""

    @property
    def log_every(self) -> int:
        return self.config.log_every

    def ends_log_window(self, unit: int) -> bool:
        """Whether unit ``unit`` (counted from 1) writes a ``metrics.jsonl`` record: every
        ``log_every`` units and the last one (a stop request ends a window too, unforeseen)."""
        return unit % self.log_every == 0 or unit == self.total_units()

    def add_hook(self, hook: Any) -> Any:
        """Call ``hook`` from now on (see :mod:`.hooks`); returns it."""
        self.hooks.append(check_hook(hook))
        return hook

    def request_stop(self, reason: str) -> None:
        """End the running :meth:`fit` after the current unit, with a final checkpoint and status
        ``"stopped"``; the first reason given is recorded. Call it during ``fit`` (from a hook, a
        signal handler, another thread): each ``fit`` starts with no request. Only the request is
        taken here: ``stop_reason`` is the one the processes agree on after the unit's hooks, so
        a request arriving at any moment stops every process after the same unit."""
        if self._stop_request is None:
            self._stop_request = reason

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False, allow_changes: bool = False) -> dict[str, Any]:
        """Run all units (fewer on early stopping or a stop request); return the training summary.

        With ``resume``, continue from ``checkpoints/last.pt`` when it exists, under the run's own
        config; ``allow_changes`` accepts settings that differ from it and records them (see
        :mod:`.run_start`). Without ``resume``, a run directory that already holds a checkpoint is
        an error, so no run is overwritten. While it runs, the run directory is locked: a second
        writer (another ``fit`` or ``evaluate`` of it) is refused (:mod:`.run_lock`). A SIGINT
        (Ctrl-C) or SIGTERM stops it after the unit under way, with its checkpoint, and raises
        :class:`~.interrupts.RunInterrupted`; a second one stops it at once (:mod:`.interrupts`).
        """
        self.stop_reason = self._stop_request = None
        with thread_count(self.config.threads), writing_run(self.run.path, self.parallel), \
                SignalStop(self) as signals:
            summary = self._fit(resume, allow_changes)
        if signals.received is not None:
            raise signals.interruption(immediate=False)
        return summary

    def _fit(self, resume: bool, allow_changes: bool) -> dict[str, Any]:
        self.parallel.check_training(self.config.mode, self.config.meta_batch_size)
        start_run(self, resume, allow_changes)
        if self._replica is None:
            self._replica = self.parallel.replicate(self.model)
        state, total = self.loop_state, self.total_units()
        if self.compilation is None:
            self.compilation = RunCompilation(self.model, self.config.compile, self.parallel.world_size)
            self.compilation.start()
        bar = tqdm(total=total, initial=state.step, desc=self.run.path.name, unit=self.unit,
                   disable=not (self.config.progress and self.parallel.is_writer), dynamic_ncols=True)
        state.start_clock()
        try:
            if self.validates and state.checkpointed_step is None:  # a new run's start is a candidate too
                self._validate(bar)
            while state.step < total and not self._ending():
                started = time.perf_counter()
                metrics, self._details = self.run_unit()
                state.step += 1
                self.compilation.after_step(time.perf_counter() - started, total - state.step)
                bar.update()
                state.window.add(metrics)
                self._ask_hooks("after_step", StepEvent(state.step, total, self.unit, metrics, self))
                end = state.step == total
                if self.validates and self.stop_reason is None and (state.step % self.config.val_every == 0 or end):
                    self._validate(bar)
                end = end or self._ending()
                if self.ends_log_window(state.step) or end:
                    self._log(bar)
                if state.step % self.config.checkpoint_every == 0 or end:
                    self._checkpoint("last")
            if state.checkpointed_step != state.step:  # ended before its first unit (a stop at the first validation)
                self._checkpoint("last")
        finally:
            bar.close()
            self.run.close()
            state.stop_clock()
        summary, best = self.parallel.from_writer(lambda: write_training_summary(self))
        if best is not None:
            self.model.load_state_dict(best)
        return summary

    def outer_step(self, batch: Any, metrics: bool = True) -> MetaUpdate | None:
        """One meta-update on ``batch`` (:func:`~graphmeta.train.outer_step.meta_update`) and one
        step of the schedule. A non-finite loss or gradient takes no step: with
        ``on_nonfinite: stop`` that is a TrainingError (nothing is checkpointed from it), with
        ``skip`` it is counted and ``None`` returned. The algorithm learns how far training has
        come first (MAML++ anneals its multi-step loss by it); its learned inner rates are projected
        into the model's ``[min_rate, max_rate]`` after (:meth:`~graphmeta.adapt.algorithms.Algorithm.project_rates_`)."""
        self.model.algorithm.set_progress(self.updates / max(self.total_updates, 1))
        update = meta_update(self.model, self.optimizer, batch, self.config.grad_clip, metrics, self._replica)
        self.model.algorithm.project_rates_()
        if update.nonfinite is not None:
            self._nonfinite(update.nonfinite)
        with warnings.catch_warnings():  # a skipped update leaves the optimizer unstepped; the schedule goes on
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before", UserWarning)
            self.scheduler.step()
        self.loop_state.updates += 1
        return update if update.nonfinite is None else None

    def _ending(self) -> bool:
        return self.early_stopped or self.stop_reason is not None

    def _ask_hooks(self, method: str, event: Any) -> None:
        """Call ``method`` of the hooks; one returning ``True`` requests a stop."""
        for hook, result in call_hooks(self.hooks, method, event):
            if result is True:
                self.request_stop(f"{method} of {hook!r} returned True at {self.unit} {self.step}")
        # the only place a request becomes the decision: every process reaches it after the same unit
        self.stop_reason = self.parallel.agree_on_stop(self._stop_request)

    def _validate(self, bar: tqdm) -> None:
        with warnings.catch_warnings():
            # validation tasks are drawn like the training ones: a shift warning there would only be noise
            warnings.simplefilter("ignore", DistributionShiftWarning)
            record = self.parallel.from_writer(self.validate)
        loss = record["loss"]
        improved = self.loop_state.record_validation(loss, self.config.early_stopping_patience)
        if improved:
            self._checkpoint("best")
        record = {"step": self.step, "split": "val", **record, "best": improved}
        if self.parallel.is_writer:
            self.run.log(record)
        self._postfix.update(val=f"{loss:.4g}", best_val=f"{self.best_loss:.4g}")
        bar.set_postfix(self._postfix, refresh=False)
        self._ask_hooks("after_validation", ValidationEvent(self.step, loss, self.best_loss, self.best_step,
                                                             improved, record, self))

    def _log(self, bar: tqdm) -> None:
        record = {"step": self.step, "split": self.split, **self.loop_state.window.take(), **self._details,
                  "lr": self.scheduler.get_last_lr()[0], "elapsed_s": round(self.elapsed_s, 3)}
        if self.parallel.is_writer:
            self.run.log(record)
        if "loss" in record:
            self._postfix["loss"] = f"{record['loss']:.4g}"
            bar.set_postfix(self._postfix, refresh=False)

    def _checkpoint(self, kind: str) -> None:
        path = self.run.best if kind == "best" else self.run.last
        event = CheckpointEvent(self.step, kind, path, False, self)
        write = not any(result is False for _, result in call_hooks(self.hooks, "before_checkpoint", event))
        if write:
            self.save(path)
        if kind == "last":
            self.loop_state.checkpointed_step = self.step
        call_hooks(self.hooks, "after_checkpoint", CheckpointEvent(self.step, kind, path, write, self))

    def _nonfinite(self, what: str) -> None:
        if self.config.on_nonfinite == "skip":
            self.loop_state.skip_update()
            return
        message = (f"non-finite {what} at {self.unit} {self.step + 1} (meta-update {self.updates + 1}) of run "
                   f"{self.run.path}; no checkpoint was written from it. Lower train.outer_lr, set train.grad_clip, "
                   "or set train.on_nonfinite: skip to skip such updates")
        if self.parallel.is_writer:
            self.run.update_summary("training", {"status": "failed", "error": message, "step": self.step})
        raise TrainingError(message)

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, **config: Any) -> EvaluationReport:
        """Evaluate the model against the baselines and write the report into the run directory
        (:func:`~.evaluation.evaluate_run`; figures: :mod:`.figures`). Keyword arguments are the
        ``evaluate:`` keys (:class:`~graphmeta.train.config.EvaluateConfig`), over ``evaluate_config``."""
        with thread_count(self.config.threads), writing_run(self.run.path, self.parallel):
            options = EvaluateConfig.from_dict({**self.evaluate_config.to_dict(), **config}, "evaluate")
            return evaluate_run(self, options)

    def train_ablation(self) -> GraphMetaLearner:
        """This run's ablation, message passing off, trained once into ``RUN/ablation``
        (:func:`~.evaluation.train_ablation`); its model."""
        return train_ablation(self)
