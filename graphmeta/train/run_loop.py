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
    summary.json["training"] (status completed, early stopped or stopped); a learner that
    validates ends holding the best weights

Every checkpoint (last.pt and best.pt, written atomically by :mod:`.checkpoint`) is written
between ``hooks.before_checkpoint(CheckpointEvent)`` (``False``: skip the write in this process)
and ``hooks.after_checkpoint(CheckpointEvent)``. :meth:`RunLoop.request_stop`, called during
``fit`` from anywhere, stops like a hook returning ``True``: after the current unit, with a final
``last.pt`` and the reason in the summary. The hooks themselves are described in :mod:`.hooks`.

**Resume.** ``fit(resume=True)`` restores every state the loop and the learner keep (model,
Adam, schedule position, task stream, RNGs, window, best, counters, wall time) and drops the
metrics recorded after the checkpoint, so a killed run resumed ends bit for bit where the
uninterrupted run would have. The run's own ``config.yaml`` is the config of a resumed run: a
learner built with other settings is refused with a ConfigError listing them (``old -> new``),
unless ``allow_changes=True`` accepts them; then ``config.yaml`` takes the new settings and
``summary.json["config_changes"]`` records them and the unit they took effect after. Keys that
say where a run lives or whether a progress bar shows (:data:`FREE_KEYS`) may differ freely.
``wall_time_s`` of the summary counts the time up to the checkpoint resumed from plus the time
after it.

**A learner** subclasses :class:`RunLoop` and supplies only what differs: the class attributes
``unit``, ``split`` (of its ``metrics.jsonl`` records), ``validates``, ``sections`` (its own
run-config sections beyond ``train``) and ``extra_checkpoint_keys``; the methods
:meth:`~RunLoop.total_units` and :meth:`~RunLoop.run_unit`; and where they apply
:meth:`~RunLoop.validate`, :meth:`~RunLoop.extra_state` / :meth:`~RunLoop.load_extra_state`,
:meth:`~RunLoop.summary_fields` and ``log_every``.

**Several processes** (torchrun, :mod:`.distributed`). ``parallel`` is this process's
:class:`~.distributed.DataParallelGroup` (one process without torchrun's environment). Only the
writer, rank 0, opens or resumes the run directory, validates, logs, writes checkpoints (the
:class:`~.distributed.RankZeroCheckpoints` hook skips them elsewhere), the summary and
evaluations, and shows the progress bar; every other process takes the writer's start state,
validation records and summary from it (``parallel.from_writer``), trains on its share of each
meta-batch through the model's DDP replica, and stops after the same unit as the others
(``parallel.agree_on_stop``, after the hooks of each unit and validation).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from time import perf_counter, strftime
from typing import Any, ClassVar, TypeVar

import torch
from tqdm.auto import tqdm

from ..data import Split
from ..errors import CheckpointError, ConfigError, TrainingError
from ..model import GraphMetaLearner
from .checkpoint import (load_checkpoint, require_finite_parameters, restore_model_and_optimizer, rng_state,
                         save_checkpoint, seed_everything, set_rng_state)
from .config import (EvaluateConfig, OnlineConfig, RunConfig, TrainConfig, family_spec, load_family_and_model,
                     load_run_config)
from .device import resolve_device, thread_count
from .distributed import RankZeroCheckpoints, Replica, join_data_parallel_group, note_world_size_change
from .evaluation import EvaluationReport, evaluate_methods
from .hooks import CheckpointEvent, StepEvent, ValidationEvent, call_hooks, check_hook
from .outer_step import MetaUpdate, meta_update
from .run_dir import RunDirectory, as_written
from .sampler import EpisodeSampler, Family
from .schedules import build_scheduler, restore_scheduler

#: Run-config keys that say where a run lives, how its processes talk and whether a progress bar
#: shows, not what it computes: a resumed run may differ in them without ``allow_changes``.
FREE_KEYS = ("train.run_dir", "train.name", "train.progress", "train.backend")
#: The checked run-config sections, completed with their defaults before two configs are compared.
CHECKED_SECTIONS = {"train": TrainConfig, "evaluate": EvaluateConfig, "online": OnlineConfig}
CHECKPOINT_KEYS = ("step", "model", "model_config", "optimizer", "scheduler", "sampler", "rng", "loop")

Learner = TypeVar("Learner", bound="RunLoop")


class MetricWindow:
    """The metrics of the units since the last log record, and how many meta-updates were skipped.

    A record holds each metric's mean over the units that defined it: NaN (the accuracy of
    regression nodes, a skipped update's loss) does not count, and a metric no unit defined is
    left out.
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.skipped = 0

    def add(self, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            if not math.isnan(value):
                self.sums[key] = self.sums.get(key, 0.0) + value
                self.counts[key] = self.counts.get(key, 0) + 1

    def take(self) -> dict[str, float]:
        """The means (and ``skipped``, when some were), and an empty window."""
        means: dict[str, Any] = {key: total / self.counts[key] for key, total in self.sums.items()}
        if self.skipped:
            means["skipped"] = self.skipped
        self.load_state_dict({"sums": {}, "counts": {}, "skipped": 0})
        return means

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts), "skipped": self.skipped}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sums = {key: float(value) for key, value in state["sums"].items()}
        self.counts = {key: int(value) for key, value in state["counts"].items()}
        self.skipped = int(state["skipped"])


class RunLoop:
    """The run loop both learners share (see the module docstring); not used on its own.

    ``hooks`` are added with :meth:`add_hook`. After construction, ``run`` is the
    :class:`RunDirectory` (``train.run_dir / train.name``, by default ``<graph>-<kind>-<timestamp>``),
    ``optimizer`` Adam at ``outer_lr`` on every parameter, ``scheduler`` the rate schedule over
    ``total_updates`` meta-updates (the learned inner rates in their own group at ``rate_lr``,
    :func:`outer_parameter_groups`), and ``sampler`` the task stream (meta-batches of
    ``stream_batch_size`` tasks) and the source of the fixed validation and evaluation tasks.
    """

    unit: ClassVar[str]
    split: ClassVar[str]
    kind: ClassVar[str] = ""
    validates: ClassVar[bool] = False
    sections: ClassVar[tuple[str, ...]] = ()
    extra_checkpoint_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: GraphMetaLearner, family: Family, config: TrainConfig, stream_batch_size: int,
                 total_updates: int, hooks: Iterable[Any] = ()) -> None:
        model.check_graph(family.graph)
        self.parallel = join_data_parallel_group(config.backend, config.device)
        device = self.parallel.process_device(config.device)
        if device is not None:
            model.to(resolve_device(device))
        self.config = config
        self.model = model
        self.family = family
        self.family_spec = family_spec(family)
        self.evaluate_config = EvaluateConfig()
        name = config.name or self.parallel.from_writer(lambda: "-".join(filter(None, [
            family.graph.name or "run", self.kind, strftime("%Y%m%d-%H%M%S")])))
        self.run = RunDirectory(Path(config.run_dir) / name)
        # fused: one kernel for every parameter instead of a Python loop over them, which on the CPU
        # takes a third as long (about 80 us against 215 for the sinusoid's MLP 40-40)
        fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
        self.optimizer = torch.optim.Adam(outer_parameter_groups(model, config), lr=config.outer_lr, fused=fused)
        self.scheduler = build_scheduler(self.optimizer, config.schedule, total_updates, config.warmup_steps,
                                         config.final_lr_ratio)
        self.total_updates = total_updates
        share = self.parallel.share(stream_batch_size) if self.parallel.world_size > 1 else None
        self.sampler = EpisodeSampler(family, stream_batch_size, config.shots, config.query_shots, config.seed, share)
        self.hooks: list[Any] = []
        if self.parallel.world_size > 1:
            self.add_hook(RankZeroCheckpoints(self.parallel))
        self._replica: Replica | None = None
        for hook in hooks:
            self.add_hook(hook)
        self.step = 0
        self.updates = 0
        self.skipped_updates = 0
        self.best_step: int | None = None
        self.best_loss = math.inf
        self.stale_validations = 0
        self.early_stopped = False
        self.stop_reason: str | None = None
        self._window = MetricWindow()
        self._details: dict[str, Any] = {}
        self._postfix: dict[str, str] = {}
        self._elapsed_before = 0.0
        self._fit_started: float | None = None
        self._checkpointed_step: int | None = None
        self._trained_world_size = self.parallel.world_size  # of the checkpoint resumed from

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

    def extra_state(self) -> dict[str, Any]:
        """What the learner adds to a checkpoint (tensors and primitive containers)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`extra_state` added."""

    def summary_fields(self) -> dict[str, Any]:
        """What the learner adds to the training summary."""
        return {}

    @property
    def log_every(self) -> int:
        return self.config.log_every

    # ------------------------------------------------------------------ building
    @classmethod
    def from_config(cls: type[Learner], config: RunConfig | Mapping[str, Any], hooks: Iterable[Any] = ()) -> Learner:
        """Load the family of ``config``, build the model (seeded with ``train.seed``) and its learner."""
        if not isinstance(config, RunConfig):
            config = RunConfig.from_dict(config)
        family, model = load_family_and_model(config)
        learner = cls(model, family, hooks=hooks, **_keywords(config.train, [getattr(config, s) for s in cls.sections]))
        learner.family_spec = dict(config.family)
        learner.evaluate_config = config.evaluate
        return learner

    @classmethod
    def from_run(cls: type[Learner], path: str | Path, checkpoint: str = "best", hooks: Iterable[Any] = ()) -> Learner:
        """The learner of the run in ``path``, loaded from its ``best`` (or ``last``) checkpoint;
        a run without ``best.pt`` (an online run keeps only ``last``) loads ``last`` either way."""
        if checkpoint not in ("best", "last"):
            raise ConfigError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
        learner = cls.from_config(load_run_config(path), hooks)
        run = learner.run
        if not run.best.is_file() and not run.last.is_file():
            raise CheckpointError(f"run {run.path} has no checkpoint ({run.last.parent} holds neither best.pt nor "
                                  "last.pt): train it first, or resume it with graphmeta train CONFIG --resume")
        return learner.load(run.best if checkpoint == "best" and run.best.is_file() else run.last)

    def run_config(self) -> dict[str, Any]:
        """The run config this learner runs, as ``config.yaml`` holds it."""
        return {"family": dict(self.family_spec), "model": dict(self.model.config), "train": self.config.to_dict(),
                "evaluate": self.evaluate_config.to_dict(), **{s: getattr(self, s).to_dict() for s in self.sections}}

    def add_hook(self, hook: Any) -> Any:
        """Call ``hook`` from now on (see :mod:`.hooks`); returns it."""
        self.hooks.append(check_hook(hook))
        return hook

    def request_stop(self, reason: str) -> None:
        """End the running :meth:`fit` after the current unit, with a final checkpoint and status
        ``"stopped"``; the first reason given is recorded. Call it during ``fit`` (from a hook, a
        signal handler, another thread): each ``fit`` starts with no request."""
        if self.stop_reason is None:
            self.stop_reason = reason

    @property
    def elapsed_s(self) -> float:
        """Wall time of the run: before the last resume (up to its checkpoint) plus since."""
        running = 0.0 if self._fit_started is None else perf_counter() - self._fit_started
        return self._elapsed_before + running

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False, allow_changes: bool = False) -> dict[str, Any]:
        """Run all units (fewer on early stopping or a stop request); return the training summary.

        With ``resume``, continue from ``checkpoints/last.pt`` when it exists, under the run's own
        config; ``allow_changes`` accepts settings that differ from it and records them (see the
        module docstring). Without ``resume``, a run directory that already holds a checkpoint is
        an error, so no run is overwritten.
        """
        with thread_count(self.config.threads):
            return self._fit(resume, allow_changes)

    def _fit(self, resume: bool, allow_changes: bool) -> dict[str, Any]:
        self.stop_reason = None
        self.parallel.check_training(self.config.mode, self.config.meta_batch_size)
        self._start(resume, allow_changes)
        if self._replica is None:
            self._replica = self.parallel.replicate(self.model)
        total = self.total_units()
        bar = tqdm(total=total, initial=self.step, desc=self.run.path.name, unit=self.unit,
                   disable=not (self.config.progress and self.parallel.is_writer), dynamic_ncols=True)
        self._fit_started = perf_counter()
        try:
            if self.validates and self._checkpointed_step is None:  # a new run's start is a candidate too
                self._validate(bar)
            while self.step < total and not self._ending():
                metrics, self._details = self.run_unit()
                self.step += 1
                bar.update()
                self._window.add(metrics)
                self._ask_hooks("after_step", StepEvent(self.step, total, self.unit, metrics, self))
                end = self.step == total
                if self.validates and self.stop_reason is None and (self.step % self.config.val_every == 0 or end):
                    self._validate(bar)
                end = end or self._ending()
                if self.step % self.log_every == 0 or end:
                    self._log(bar)
                if self.step % self.config.checkpoint_every == 0 or end:
                    self._checkpoint("last")
            if self._checkpointed_step != self.step:  # ended before its first unit (a stop at the first validation)
                self._checkpoint("last")
        finally:
            bar.close()
            self.run.close()
            self._elapsed_before, self._fit_started = self.elapsed_s, None
        return self._finish()

    def outer_step(self, batch: Any, metrics: bool = True) -> MetaUpdate | None:
        """One meta-update on ``batch`` (:func:`~graphmeta.train.outer_step.meta_update`) and one
        step of the schedule. A non-finite loss or gradient takes no step: with
        ``on_nonfinite: stop`` that is a TrainingError (nothing is checkpointed from it), with
        ``skip`` it is counted and ``None`` returned. The algorithm learns how far training has
        come first (MAML++ anneals its multi-step loss by it); its learned inner rates are clamped
        into ``[train.min_rate, train.max_rate]`` after."""
        self.model.algorithm.set_progress(self.updates / max(self.total_updates, 1))
        update = meta_update(self.model, self.optimizer, batch, self.config.grad_clip, metrics, self._replica)
        self.model.algorithm.clamp_rates_(self.config.min_rate, self.config.max_rate)
        if update.nonfinite is not None:
            self._nonfinite(update.nonfinite)
        with warnings.catch_warnings():  # a skipped update leaves the optimizer unstepped; the schedule goes on
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before", UserWarning)
            self.scheduler.step()
        self.updates += 1
        return update if update.nonfinite is None else None

    def _start(self, resume: bool, allow_changes: bool) -> None:
        if allow_changes and not resume:
            raise ConfigError("allow_changes accepts a changed config when a run is resumed: pass resume=True too "
                              "(graphmeta train --resume --allow-changes)")
        self.parallel.from_writer(lambda: self._open_run(resume, allow_changes))
        if self.parallel.world_size > 1:  # every process goes on from the writer's state
            state, checkpointed = self.parallel.from_writer(lambda: (self.state_dict(), self._checkpointed_step))
            if not self.parallel.is_writer:
                self.load_state_dict(state, source="the state of rank 0")
                self._checkpointed_step = checkpointed

    def _open_run(self, resume: bool, allow_changes: bool) -> None:
        """The writer's part of the start: a new run directory, or the run resumed from ``last.pt``."""
        config = self.run_config()
        if not self.run.last.exists():
            seed_everything(self.config.seed)
            self.run.write_config(config)
            self.model.graph.save(self.run.graph)
            return
        if not resume:
            raise ConfigError(f"{self.run.path} already holds a run: resume it (resume=True, graphmeta train "
                              "--resume) or choose another name (train.name)")
        saved = self.run.read_config()
        changes = config_changes(saved, config) if saved else {}
        if changes and not allow_changes:
            listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())
            raise ConfigError(f"{self.run.path} was trained with another config ({self.run.config}); this one "
                              f"changes {listed}. Resume with the run's own config, or accept the changes with "
                              "allow_changes=True (graphmeta train --resume --allow-changes); the run records them")
        self.load(self.run.last)
        self._checkpointed_step = self.step
        if self._trained_world_size != self.parallel.world_size:
            note_world_size_change(self.run, self.step, self.unit, self._trained_world_size, self.parallel.world_size)
        self.run.truncate_metrics(self.step)
        if changes:
            self.run.write_config(config)
            recorded = {key: [old, new] for key, (old, new) in changes.items()}
            history = self.run.read_summary().get("config_changes", [])
            self.run.update_summary("config_changes", [*history, {"after": self.step, "unit": self.unit,
                                                                 "changes": recorded}])

    def _ending(self) -> bool:
        return self.early_stopped or self.stop_reason is not None

    def _ask_hooks(self, method: str, event: Any) -> None:
        """Call ``method`` of the hooks; one returning ``True`` requests a stop."""
        for hook, result in call_hooks(self.hooks, method, event):
            if result is True:
                self.request_stop(f"{method} of {hook!r} returned True at {self.unit} {self.step}")
        self.stop_reason = self.parallel.agree_on_stop(self.stop_reason)

    def _validate(self, bar: tqdm) -> None:
        record = self.parallel.from_writer(self.validate)
        loss = record["loss"]
        improved = loss < self.best_loss
        if improved:
            self.best_step, self.best_loss, self.stale_validations = self.step, loss, 0
            self._checkpoint("best")
        else:
            self.stale_validations += 1
            patience = self.config.early_stopping_patience
            self.early_stopped = patience is not None and self.stale_validations >= patience
        record = {"step": self.step, "split": "val", **record, "best": improved}
        if self.parallel.is_writer:
            self.run.log(record)
        self._postfix.update(val=f"{loss:.4g}", best_val=f"{self.best_loss:.4g}")
        bar.set_postfix(self._postfix, refresh=False)
        self._ask_hooks("after_validation", ValidationEvent(self.step, loss, self.best_loss, self.best_step,
                                                             improved, record, self))

    def _log(self, bar: tqdm) -> None:
        record = {"step": self.step, "split": self.split, **self._window.take(), **self._details,
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
            self._checkpointed_step = self.step
        call_hooks(self.hooks, "after_checkpoint", CheckpointEvent(self.step, kind, path, write, self))

    def _nonfinite(self, what: str) -> None:
        if self.config.on_nonfinite == "skip":
            self.skipped_updates += 1
            self._window.skipped += 1
            return
        message = (f"non-finite {what} at {self.unit} {self.step + 1} (meta-update {self.updates + 1}) of run "
                   f"{self.run.path}; no checkpoint was written from it. Lower train.outer_lr, set train.grad_clip, "
                   "or set train.on_nonfinite: skip to skip such updates")
        if self.parallel.is_writer:
            self.run.update_summary("training", {"status": "failed", "error": message, "step": self.step})
        raise TrainingError(message)

    def _finish(self) -> dict[str, Any]:
        summary, best = self.parallel.from_writer(self._write_summary)
        if best is not None:
            self.model.load_state_dict(best)
        return summary

    def _write_summary(self) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
        """The training summary, written to ``summary.json``, and the weights of ``best.pt`` for a
        learner that validates (``None``: none)."""
        status = "stopped" if self.stop_reason else "early stopped" if self.early_stopped else "completed"
        summary: dict[str, Any] = {"status": status, **({"stop_reason": self.stop_reason} if self.stop_reason else {}),
                                   **self.summary_fields(), "updates": self.updates,
                                   "skipped_updates": self.skipped_updates, "wall_time_s": round(self.elapsed_s, 2),
                                   "world_size": self.parallel.world_size}
        checkpoints = {"last": str(self.run.last)}
        if self.validates:
            summary.update(best_step=self.best_step, best_val_loss=self.best_loss)
            checkpoints["best"] = str(self.run.best)
        summary["checkpoints"] = checkpoints
        self.run.update_summary("training", summary)
        if self.validates and self.run.best.is_file():
            return summary, load_checkpoint(self.run.best, required=("model",))["model"]
        return summary, None

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, **config: Any) -> EvaluationReport:
        """Evaluate the model on ``num_tasks`` fixed tasks of ``split`` against the baselines (see
        :mod:`.evaluation`) and write ``evaluation-<split>-<k>steps.json`` and the ``evaluation``
        section of ``summary.json``; returns the numbers (figures: :mod:`.figures`).

        Keyword arguments are the ``evaluate:`` keys (:class:`~graphmeta.train.config.EvaluateConfig`),
        over ``evaluate_config``. With ``ablation`` and message passing on, the ablation is
        trained first (:meth:`train_ablation`) and evaluated on the same tasks.
        """
        with thread_count(self.config.threads):
            return self._evaluate(EvaluateConfig.from_dict({**self.evaluate_config.to_dict(), **config}, "evaluate"))

    def _evaluate(self, options: EvaluateConfig) -> EvaluationReport:
        ablation = self.train_ablation() if options.ablation and self.model.config["message_passing"] else None
        steps = self.model.config["inner_steps"] if options.adapt_steps is None else options.adapt_steps
        tasks = self.sampler.fixed(options.split, options.num_tasks, options.shots)
        report = evaluate_methods(self.model, tasks, steps, self.sampler.fixed("val", self.config.val_tasks),
                                  options.tasks_per_batch, self.config.seed, self.run.path.name, options.split,
                                  options.scratch_steps, options.scratch_lr, ablation, self.parallel,
                                  self._pooled_rows())
        if self.parallel.is_writer:
            self.run.write_json(self.run.evaluation(report.split, report.adapt_steps), report.to_dict())
            self.run.update_summary("evaluation", report.to_dict())
        return report

    def _pooled_rows(self) -> Split | None:
        """The training rows of a family that holds a table (``pooled_rows``), for the pooled
        baseline of :func:`~.evaluation.evaluate_methods`; else ``None``."""
        return self.family.pooled_rows("train") if hasattr(self.family, "pooled_rows") else None

    def train_ablation(self) -> GraphMetaLearner:
        """The ablation of this run: the same configuration with message passing off, seeded alike
        and trained by the same kind of learner into ``RUN/ablation`` once (resumed if interrupted,
        reloaded when done, following this run's config when that changed on resume); its model."""
        torch.manual_seed(self.config.seed)
        model = GraphMetaLearner(self.model.graph, **{**self.model.config, "message_passing": False})
        keywords = _keywords(self.config, [getattr(self, s) for s in self.sections])
        ablation = type(self)(model, self.family, **{**keywords, "run_dir": str(self.run.ablation.parent),
                                                     "name": self.run.ablation.name})
        ablation.family_spec = self.family_spec
        ablation.fit(resume=True, allow_changes=True)
        return ablation.model

    # --------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as tensors and primitive containers."""
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "model_config": dict(self.model.config),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": rng_state(),
            "loop": {"updates": self.updates, "skipped_updates": self.skipped_updates, "best_step": self.best_step,
                     "best_loss": self.best_loss, "stale_validations": self.stale_validations,
                     "early_stopped": self.early_stopped, "window": self._window.state_dict(),
                     "elapsed_s": self.elapsed_s, "world_size": self.parallel.world_size},
            "train_config": self.config.to_dict(),
            **self.extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any], source: str = "the state") -> None:
        """Restore a :meth:`state_dict`; a state that does not fit is a CheckpointError naming ``source``."""
        restore_model_and_optimizer(self.model, self.optimizer, state, source)
        restore_scheduler(self.scheduler, state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.load_extra_state(state)
        set_rng_state(state["rng"])
        loop = state["loop"]
        self.step = int(state["step"])
        self.updates, self.skipped_updates = int(loop["updates"]), int(loop["skipped_updates"])
        self.best_step, self.best_loss = loop["best_step"], float(loop["best_loss"])
        self.stale_validations = int(loop["stale_validations"])
        self.early_stopped = bool(loop["early_stopped"])
        self._window.load_state_dict(loop["window"])
        self._elapsed_before = float(loop["elapsed_s"])
        self._trained_world_size = int(loop.get("world_size", 1))

    def save(self, path: str | Path | None = None) -> Path:
        """Write the full state to ``path`` (default ``checkpoints/last.pt``) atomically; a
        non-finite parameter is a TrainingError naming it, and nothing is written."""
        require_finite_parameters(self.model, f"at {self.unit} {self.step}")
        return save_checkpoint(self.state_dict(), self.run.last if path is None else path)

    def load(self: Learner, path: str | Path | None = None) -> Learner:
        """Restore the full state from ``path`` (default ``checkpoints/last.pt``); returns ``self``."""
        path = self.run.last if path is None else Path(path)
        required = (*CHECKPOINT_KEYS, *self.extra_checkpoint_keys)
        self.load_state_dict(load_checkpoint(path, required=required), source=f"checkpoint {path}")
        return self


def outer_parameter_groups(model: GraphMetaLearner, config: TrainConfig) -> list[dict[str, Any]]:
    """The outer optimizer's parameter groups: every parameter at ``outer_lr``, but the algorithm's
    learned inner rates, in a group of their own at ``rate_lr`` (default ``outer_lr * inner_lr``)."""
    rates = model.algorithm.learned_rates()
    if not rates:
        return [{"params": list(model.parameters())}]
    learned = {id(rate) for rate in rates}
    rate_lr = config.outer_lr * model.config["inner_lr"] if config.rate_lr is None else config.rate_lr
    return [{"params": [p for p in model.parameters() if id(p) not in learned]}, {"params": rates, "lr": rate_lr}]


def config_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{"section.key": (saved value, current value)}`` for every key in which two run configs
    differ, except :data:`FREE_KEYS`; the checked sections are completed with their defaults first,
    so a key added to graphmeta since ``saved`` was written is no change."""
    old, new = (_flat(as_written(_completed(config))) for config in (saved, current))
    return {key: (old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys())
            if key not in FREE_KEYS and old.get(key) != new.get(key)}


def _completed(config: Mapping[str, Any]) -> dict[str, Any]:
    return {name: CHECKED_SECTIONS[name].from_dict(section or {}, name).to_dict() if name in CHECKED_SECTIONS
            else section for name, section in config.items()}


def _flat(config: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{name}.{key}": value for name, section in config.items() for key, value in (section or {}).items()}


def _keywords(train: TrainConfig, sections: Iterable[Any]) -> dict[str, Any]:
    """The constructor keywords of a learner: its ``train`` keys and those of its own sections."""
    return {**train.to_dict(), **{key: value for section in sections for key, value in section.to_dict().items()}}
