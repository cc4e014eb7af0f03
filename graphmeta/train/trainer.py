"""`Trainer`: episodic (batch) meta-training of a :class:`GraphMetaLearner` on a task family.

Step ``s`` draws meta-batch ``s`` of the task stream (:class:`EpisodeSampler`), computes the
meta-loss, and takes one Adam step on every parameter of the model (meta-initialisation,
inner rates, message passing), with the gradient norm clipped to ``grad_clip`` and the rate
``outer_lr * m(s)`` of the schedule (:mod:`.schedules`). At the start and every ``val_every``
steps the model adapts to the same fixed validation tasks; the state with the lowest validation query loss
is kept as ``best.pt``, and ``early_stopping_patience`` validations without a new best end the
run. When ``fit`` returns, the model holds the best weights.

A run is a function of its config: ``seed`` fixes the model (when built from a config), the
task stream and every generator, and a run resumed from ``last.pt`` ends bit for bit where the
uninterrupted run would have. A run resumed with other ``steps`` or schedule settings
goes on from where it stopped on the schedule of its new config.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import ConfigError, TrainingError
from ..model import GraphMetaLearner
from .checkpoint import (load_checkpoint, require_finite_parameters, restore_model_and_optimizer, rng_state,
                         save_checkpoint, set_rng_state)
from .config import EvaluateConfig, RunConfig, TrainConfig, family_spec, load_family_and_model, load_run_config
from .evaluation import EvaluationReport, evaluate_run, nanmean, query_results
from .loop import meta_update, set_up_run, start_run
from .sampler import EpisodeSampler, Family
from .schedules import restore_scheduler

CHECKPOINT_KEYS = ("step", "model", "model_config", "optimizer", "scheduler", "sampler", "rng", "trainer")
WINDOW_KEYS = ("loss", "loss_before", "loss_after", "accuracy_after", "grad_norm")


class Trainer:
    """Meta-train ``model`` on tasks from ``family``; keyword arguments are the ``train:`` keys
    of a run config (see :class:`~graphmeta.train.config.TrainConfig`).

    Example::

        family = graphmeta.load_family("sinusoid")
        model = graphmeta.GraphMetaLearner(family.graph, inner_steps=5, inner_lr=0.01)
        trainer = graphmeta.Trainer(model, family, steps=2000, shots=10, name="sinusoid")
        trainer.fit()                    # runs/sinusoid/: metrics, checkpoints, figures
        print(trainer.evaluate().table())

    ``family_spec`` is the ``family:`` section written to ``config.yaml`` (so ``graphmeta
    evaluate`` can rebuild the run); :meth:`from_config` sets it, otherwise it comes from the
    family's ``card`` and ``config`` (:func:`~graphmeta.train.config.family_spec`).
    ``evaluate_config`` holds the defaults of :meth:`evaluate`.
    """

    def __init__(self, model: GraphMetaLearner, family: Family, **config: Any) -> None:
        self.config = TrainConfig.from_dict(config, "Trainer")
        if self.config.mode != "batch":
            raise ConfigError(f"Trainer runs train.mode 'batch', got {self.config.mode!r}: use "
                              "graphmeta.OnlineMetaLearner for online meta-learning")
        self.model = model
        self.family = family
        self.family_spec = family_spec(family)
        self.evaluate_config = EvaluateConfig()
        self.run, self.optimizer, self.scheduler = set_up_run(model, family, self.config, self.config.steps)
        self.sampler = EpisodeSampler(family, self.config.meta_batch_size, self.config.shots,
                                      self.config.query_shots, self.config.seed)
        self.step = 0
        self.best_step: int | None = None
        self.best_loss = math.inf
        self.stale_validations = 0
        self.skipped_steps = 0
        self.early_stopped = False
        self._window: dict[str, float] = {}
        self._postfix: dict[str, str] = {}
        self._validation_tasks = None

    def __repr__(self) -> str:
        return f"Trainer(run={str(self.run.path)!r}, step={self.step}/{self.config.steps}, {self.model!r})"

    # ------------------------------------------------------------------ building
    @classmethod
    def from_config(cls, config: RunConfig | Mapping[str, Any]) -> Trainer:
        """Load the family of ``config``, build the model (seeded with ``train.seed``) and its trainer."""
        if not isinstance(config, RunConfig):
            config = RunConfig.from_dict(config)
        family, model = load_family_and_model(config)
        trainer = cls(model, family, **config.train.to_dict())
        trainer.family_spec = dict(config.family)
        trainer.evaluate_config = config.evaluate
        return trainer

    @classmethod
    def from_run(cls, path: str | Path, checkpoint: str = "best") -> Trainer:
        """The trainer of the run in ``path``, loaded from its ``best`` (or ``last``) checkpoint."""
        if checkpoint not in ("best", "last"):
            raise ConfigError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
        trainer = cls.from_config(load_run_config(path))
        run = trainer.run
        return trainer.load(run.best if checkpoint == "best" and run.best.is_file() else run.last)

    # ------------------------------------------------------------------ training
    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Meta-train for ``steps`` steps (fewer on early stopping); return the training summary.

        With ``resume``, continue from ``checkpoints/last.pt`` when it exists. Without it, a
        run directory that already holds a checkpoint is an error, so no run is overwritten.
        """
        start_run(self.run, resume, lambda path: self.load(path).step, self.config.seed,
                  {"family": self.family_spec, "model": self.model.config, "train": self.config.to_dict(),
                   "evaluate": self.evaluate_config.to_dict()}, self.model.graph)
        start = time.perf_counter()
        bar = tqdm(total=self.config.steps, initial=self.step, desc=self.run.path.name, unit="step",
                   disable=not self.config.progress, dynamic_ncols=True)
        try:
            if self.step == 0:  # the starting point is a candidate too (a meta-init may already be good)
                self._validate(bar)
            while self.step < self.config.steps and not self.early_stopped:
                self._train_step()
                self.step += 1
                bar.update()
                finished = self.step == self.config.steps
                if self.step % self.config.log_every == 0 or finished:
                    self._log_window(bar, time.perf_counter() - start)
                if self.step % self.config.val_every == 0 or finished:
                    self._validate(bar)
                if self.step % self.config.checkpoint_every == 0 or finished or self.early_stopped:
                    self.save()
        finally:
            bar.close()
            self.run.close()
        return self._finish(time.perf_counter() - start)

    def _train_step(self) -> None:
        update = meta_update(self.model, self.optimizer, self.sampler.next(), self.config.grad_clip)
        if update.nonfinite is not None:
            self._nonfinite(update.nonfinite)
        else:
            values = {"loss": update.loss, "grad_norm": update.grad_norm,
                      **{key: nanmean(value) for key, value in update.metrics.items()}}
            for key in WINDOW_KEYS:
                value = float(values[key].detach())
                if not math.isnan(value):
                    self._window[key] = self._window.get(key, 0.0) + value
            self._window["steps"] = self._window.get("steps", 0.0) + 1
        self.scheduler.step()

    def _nonfinite(self, what: str) -> None:
        if self.config.on_nonfinite == "skip":
            self.skipped_steps += 1
            self._window["skipped"] = self._window.get("skipped", 0.0) + 1
            return
        message = (f"non-finite {what} at step {self.step + 1} of run {self.run.path}; "
                   "no checkpoint was written from it. Lower train.outer_lr, set train.grad_clip, or set "
                   "train.on_nonfinite: skip to skip such steps")
        self.run.update_summary("training", {"status": "failed", "error": message, "step": self.step})
        raise TrainingError(message)

    def _log_window(self, bar: tqdm, elapsed: float) -> None:
        window, self._window = self._window, {}
        steps = window.pop("steps", 0.0)
        record: dict[str, Any] = {"step": self.step, "split": "train", "lr": self.scheduler.get_last_lr()[0],
                                  "elapsed_s": round(elapsed, 3)}
        record.update({key: window[key] / steps for key in WINDOW_KEYS if key in window and steps})
        if "skipped" in window:
            record["skipped"] = int(window["skipped"])
        self.run.log(record)
        if "loss" in record:
            self._postfix["loss"] = f"{record['loss']:.4g}"
            bar.set_postfix(self._postfix, refresh=False)

    def _validate(self, bar: tqdm) -> None:
        if self._validation_tasks is None:
            self._validation_tasks = self.sampler.fixed("val", self.config.val_tasks)
        tasks = self._validation_tasks
        self.model.eval()
        after = query_results(self.model, tasks, self.config.meta_batch_size, self.model.adapt)
        before = query_results(self.model, tasks, self.config.meta_batch_size,
                               lambda chunk: self.model.adapt(chunk, steps=0))
        loss = after.total_loss().mean
        improved = loss < self.best_loss
        record = {"step": self.step, "split": "val", "loss": loss, "loss_before": before.total_loss().mean,
                  "accuracy": after.total_accuracy().mean, "best": improved,
                  "per_node": {node: after.node_loss(n).mean for n, node in enumerate(self.model.graph.names)}}
        if improved:
            self.best_step, self.best_loss, self.stale_validations = self.step, loss, 0
            self.save(self.run.best)
        else:
            self.stale_validations += 1
            patience = self.config.early_stopping_patience
            self.early_stopped = patience is not None and self.stale_validations >= patience
        self.run.log(record)
        self._postfix.update(val=f"{loss:.4g}", best_val=f"{self.best_loss:.4g}")
        bar.set_postfix(self._postfix, refresh=False)

    def _finish(self, elapsed: float) -> dict[str, Any]:
        from .figures import plot_training_curves  # matplotlib: imported when a figure is drawn

        records = self.run.read_metrics()
        plot_training_curves(records, self.run.figures / "curves.png", title=self.run.path.name)
        train = [r for r in records if r["split"] == "train" and "loss" in r]
        status = "early stopped" if self.early_stopped else "completed"
        summary = {"status": status, "steps": self.step, "best_step": self.best_step, "best_val_loss": self.best_loss,
                   "final_train_loss": train[-1]["loss"] if train else None, "skipped_steps": self.skipped_steps,
                   "wall_time_s": round(elapsed, 2), "checkpoints": {"last": str(self.run.last),
                                                                     "best": str(self.run.best)}}
        self.run.update_summary("training", summary)
        if self.run.best.is_file():
            self.model.load_state_dict(load_checkpoint(self.run.best, required=("model",))["model"])
        return summary

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, **config: Any) -> EvaluationReport:
        """Evaluate on ``num_tasks`` fixed tasks of ``split`` against the baselines; write
        ``evaluation-<split>.json``, the per-node figures and ``summary.json``.

        Keyword arguments are the ``evaluate:`` keys (see
        :class:`~graphmeta.train.config.EvaluateConfig`), over ``evaluate_config``.
        """
        options = EvaluateConfig.from_dict({**self.evaluate_config.to_dict(), **config}, "evaluate")
        tasks = self.sampler.fixed(options.split, options.num_tasks)
        return evaluate_run(self.model, tasks, options, self.config.seed, self.run, self.ablation_model)

    def ablation_model(self) -> GraphMetaLearner:
        """The same configuration meta-trained with message passing off, seeded alike: trained
        once into ``RUN/ablation`` (resumed if interrupted) and reloaded from there afterwards."""
        torch.manual_seed(self.config.seed)
        model = GraphMetaLearner(self.model.graph, **{**self.model.config, "message_passing": False})
        config = {**self.config.to_dict(), "run_dir": str(self.run.path), "name": "ablation"}
        trainer = Trainer(model, self.family, **config)
        trainer.family_spec = self.family_spec
        trainer.fit(resume=True)
        return trainer.model

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
            "trainer": {"best_step": self.best_step, "best_loss": self.best_loss,
                        "stale_validations": self.stale_validations, "skipped_steps": self.skipped_steps,
                        "early_stopped": self.early_stopped, "window": dict(self._window)},
            "train_config": self.config.to_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any], source: str = "the state") -> None:
        """Restore a :meth:`state_dict`; a state that does not fit the model is a CheckpointError naming ``source``."""
        restore_model_and_optimizer(self.model, self.optimizer, state, source)
        restore_scheduler(self.scheduler, state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        set_rng_state(state["rng"])
        trainer = state["trainer"]
        self.step = int(state["step"])
        self.best_step, self.best_loss = trainer["best_step"], float(trainer["best_loss"])
        self.stale_validations = int(trainer["stale_validations"])
        self.skipped_steps = int(trainer["skipped_steps"])
        self.early_stopped = bool(trainer["early_stopped"])
        self._window = dict(trainer["window"])

    def save(self, path: str | Path | None = None) -> Path:
        """Write the full training state to ``path`` (default ``checkpoints/last.pt``) atomically.

        A non-finite parameter is a TrainingError naming it, and nothing is written.
        """
        require_finite_parameters(self.model, f"at step {self.step}")
        return save_checkpoint(self.state_dict(), self.run.last if path is None else path)

    def load(self, path: str | Path | None = None) -> Trainer:
        """Restore the full training state from ``path`` (default ``checkpoints/last.pt``); returns ``self``."""
        path = self.run.last if path is None else Path(path)
        self.load_state_dict(load_checkpoint(path, required=CHECKPOINT_KEYS), source=f"checkpoint {path}")
        return self
