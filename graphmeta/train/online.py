"""`OnlineMetaLearner`: follow the meta-leader (FTML; Finn et al. 2019, "Online Meta-Learning").

Tasks ``T_1, T_2, ...`` arrive one at a time. When ``T_i`` arrives, with meta-parameters
``theta_{i-1}`` (everything the outer optimizer trains: initialisation, rates, message passing):

1. **score** it: adapt on its support set, ``phi_i = U(theta_{i-1}, S_i)``, and record the
   query loss ``l_i = L(phi_i, Q_i)``. ``T_i`` has not touched ``theta`` yet, so ``l_i`` is
   the loss an online learner suffers, measured on unseen data. The same adaptation from the
   first ``K'`` support examples, for ``K'`` in the grid ``1, 2, 4, ..., K`` (``K`` =
   ``shots``), gives ``l_i(K')`` and ``shots_to_threshold = min {K' : l_i(K') <= threshold}``:
   how much data the learner needs for a new task, FTML's measure of learning efficiency;
2. **store** ``T_i`` in the bounded :class:`~graphmeta.train.buffer.TaskBuffer`;
3. **meta-train**: ``M`` Adam steps on ``mean_{j in B} L(U(theta, S_j), Q_j)``, each on a
   meta-batch ``B`` drawn uniformly from the buffer: stochastic steps on FTML's
   follow-the-leader objective ``theta_i = argmin_theta (1/i) sum_{j <= i} L(U(theta, S_j), Q_j)``
   (exactly so under the reservoir policy, see :mod:`.buffer`).

``metrics.jsonl`` holds one record per arriving task (``split: online``, ``step = i``): ``loss``
(``l_i``), ``cumulative_loss`` (``sum_{j <= i} l_j``: the regret plus the comparator's loss,
so its slope falls as the learner improves), ``loss_by_shots`` (``l_i(K')``),
``shots_to_threshold``, ``train_loss`` (the mean meta-loss of the ``M`` updates), ``lr`` and
``buffer`` (tasks stored). The learning curve is ``figures/online.png``.

The stream is task ``i`` = ``family.sample(1, shots, query_shots, "train", seed=s_i)`` of an
:class:`~graphmeta.train.sampler.EpisodeSampler` of meta-batch size 1, so it is a function of
``seed`` alone. Checkpoints (``checkpoints/last.pt`` every ``checkpoint_every`` tasks) hold the
model, Adam, the schedule's position, the stream position, the buffer's tensors and every RNG,
and a run resumed from one ends bit for bit where the uninterrupted run would have; resumed with
a longer stream, the schedule stretches to the new number of meta-updates.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data import TaskBatch
from ..errors import ConfigError, DataError, TrainingError, check_keys
from ..model import GraphMetaLearner
from .buffer import TaskBuffer
from .checkpoint import (load_checkpoint, require_finite_parameters, restore_model_and_optimizer, rng_state,
                         save_checkpoint, set_rng_state)
from .config import (EvaluateConfig, OnlineConfig, RunConfig, TrainConfig, family_spec, load_family_and_model,
                     load_run_config)
from .evaluation import EvaluationReport, evaluate_run, nanmean, query_results
from .sampler import EpisodeSampler, Family
from .loop import meta_update, set_up_run, start_run
from .schedules import restore_scheduler

CHECKPOINT_KEYS = ("step", "model", "model_config", "optimizer", "scheduler", "stream", "buffer", "rng", "online")


class OnlineMetaLearner:
    """Meta-learn ``model`` online from a stream of tasks of ``family`` (FTML).

    Keyword arguments are the ``train:`` keys (:class:`~graphmeta.train.config.TrainConfig`;
    ``mode`` is ``online``) and the ``online:`` keys (:class:`~graphmeta.train.config.OnlineConfig`)
    of a run config. Example::

        family = graphmeta.load_family("alarm-dirichlet")
        model = graphmeta.GraphMetaLearner(family.graph, inner_steps=1, inner_lr=0.5)
        learner = graphmeta.OnlineMetaLearner(model, family, tasks=300, updates_per_task=1,
                                              buffer_size=100, shots=10, outer_lr=3e-3, name="online")
        learner.fit()                  # runs/online/: per-task losses, checkpoints, figures/online.png
        print(learner.evaluate().table())
    """

    def __init__(self, model: GraphMetaLearner, family: Family, **config: Any) -> None:
        online_keys = {f.name for f in dataclasses.fields(OnlineConfig)}
        check_keys(config, [*online_keys, *(f.name for f in dataclasses.fields(TrainConfig))], "OnlineMetaLearner")
        self.online = OnlineConfig.from_dict({k: v for k, v in config.items() if k in online_keys}, "online")
        train = {k: v for k, v in config.items() if k not in online_keys}
        if train.get("mode", "online") != "online":
            raise ConfigError(f"OnlineMetaLearner runs mode 'online', got mode {train['mode']!r}: "
                              "use Trainer for batch meta-training")
        self.config = TrainConfig.from_dict({**train, "mode": "online"}, "train")
        self.model = model
        self.family = family
        self.family_spec = family_spec(family)
        self.evaluate_config = EvaluateConfig()
        self.run, self.optimizer, self.scheduler = set_up_run(
            model, family, self.config, self.online.tasks * self.online.updates_per_task, "online")
        self.stream = EpisodeSampler(family, 1, self.config.shots, self.config.query_shots, self.config.seed)
        self.buffer = TaskBuffer(family.graph, self.online.buffer_size, self.online.buffer_policy, self.config.seed)
        self.updates = 0
        self.skipped_updates = 0
        self.cumulative_loss = 0.0

    def __repr__(self) -> str:
        return (f"OnlineMetaLearner(run={str(self.run.path)!r}, task={self.stream.drawn}/{self.online.tasks}, "
                f"{self.buffer!r}, {self.model!r})")

    @classmethod
    def from_config(cls, config: RunConfig | Mapping[str, Any]) -> OnlineMetaLearner:
        """Load the family of ``config``, build the model (seeded with ``train.seed``) and its learner."""
        if not isinstance(config, RunConfig):
            config = RunConfig.from_dict(config)
        family, model = load_family_and_model(config)
        learner = cls(model, family, **config.train.to_dict(), **config.online.to_dict())
        learner.family_spec = dict(config.family)
        learner.evaluate_config = config.evaluate
        return learner

    @classmethod
    def from_run(cls, path: str | Path, checkpoint: str = "last") -> OnlineMetaLearner:
        """The learner of the online run in ``path``, loaded from its checkpoint, like
        :meth:`Trainer.from_run <graphmeta.train.Trainer.from_run>`. An online run keeps only
        ``last`` (the meta-parameters at the end of the stream); ``best`` names it too, so
        ``graphmeta evaluate`` loads either kind of run alike."""
        if checkpoint not in ("best", "last"):
            raise ConfigError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
        learner = cls.from_config(load_run_config(path))
        return learner.load(learner.run.last)

    # ------------------------------------------------------------------ the stream
    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Run the stream to its end (``online.tasks`` tasks); return the summary.

        With ``resume``, continue from ``checkpoints/last.pt`` when it exists. Without it, a
        run directory that already holds a checkpoint is an error, so no run is overwritten.
        """
        start_run(self.run, resume, lambda path: self.load(path).stream.drawn, self.config.seed,
                  {"family": self.family_spec, "model": self.model.config, "train": self.config.to_dict(),
                   "evaluate": self.evaluate_config.to_dict(), "online": self.online.to_dict()}, self.model.graph)
        start = time.perf_counter()
        bar = tqdm(total=self.online.tasks, initial=self.stream.drawn, desc=self.run.path.name, unit="task",
                   disable=not self.config.progress, dynamic_ncols=True)
        try:
            while self.stream.drawn < self.online.tasks:
                record = self._observe(self.stream.next())
                self.run.log({**record, "elapsed_s": round(time.perf_counter() - start, 3)})
                bar.update()
                bar.set_postfix(loss=f"{record['loss']:.4g}", refresh=False)
                position = self.stream.drawn
                if position % self.config.checkpoint_every == 0 or position == self.online.tasks:
                    self.save()
        finally:
            bar.close()
            self.run.close()
        return self._finish(time.perf_counter() - start)

    def _observe(self, task: TaskBatch) -> dict[str, Any]:
        """One arrival: score ``task`` with the current meta-parameters, store it, take the
        ``M`` meta-updates; return its record (see the module docstring)."""
        record = {"step": self.stream.drawn, "split": "online", **self.score(task)}
        self.cumulative_loss += record["loss"]
        self.buffer.add(task)
        losses = [self._update() for _ in range(self.online.updates_per_task)]
        losses = [loss for loss in losses if loss is not None]
        record.update(cumulative_loss=self.cumulative_loss, lr=self.scheduler.get_last_lr()[0],
                      buffer=len(self.buffer), updates=self.updates)
        if losses:
            record["train_loss"] = sum(losses) / len(losses)
        return record

    def score(self, task: TaskBatch) -> dict[str, Any]:
        """The query results of ``task`` (one task) adapted with the current meta-parameters:
        ``loss`` and ``accuracy`` from its whole support set, ``loss_by_shots`` from its first
        ``K'`` support examples for ``K'`` in :func:`support_sizes`, and ``shots_to_threshold``.
        Changes nothing."""
        if task.num_tasks != 1:
            raise DataError(f"score takes one task, got a batch of {task.num_tasks}: select one with batch.select([t])")
        sizes = support_sizes(task.shots)
        copies = task.select([0] * len(sizes))
        prefix = torch.arange(task.shots, device=task.device) < torch.tensor(sizes, device=task.device)[:, None]
        support = dataclasses.replace(copies.support, observed=copies.support.observed & prefix[..., None])
        self.model.eval()
        result = query_results(self.model, dataclasses.replace(copies, support=support), len(sizes), self.model.adapt)
        losses = nanmean(result.loss, dim=1).tolist()
        record: dict[str, Any] = {"loss": losses[-1], "accuracy": float(nanmean(result.accuracy[-1])),
                                  "loss_by_shots": dict(zip(sizes, losses))}
        if self.online.loss_threshold is not None:
            reached = [size for size, loss in zip(sizes, losses) if loss <= self.online.loss_threshold]
            record["shots_to_threshold"] = reached[0] if reached else None
        return record

    def _update(self) -> float | None:
        """One meta-update on a meta-batch from the buffer; its meta-loss, or ``None`` when skipped."""
        update = meta_update(self.model, self.optimizer, self.buffer.sample(self.config.meta_batch_size),
                             self.config.grad_clip, metrics=False)
        if update.nonfinite is not None:
            self._nonfinite(update.nonfinite)
        self.scheduler.step()
        self.updates += 1
        return float(update.loss.detach()) if update.nonfinite is None else None

    def _nonfinite(self, what: str) -> None:
        if self.config.on_nonfinite == "skip":
            self.skipped_updates += 1
            return
        message = (f"non-finite {what} in meta-update {self.updates + 1} (task "
                   f"{self.stream.drawn}) of run {self.run.path}; no checkpoint was written from it. Lower "
                   "train.outer_lr, set train.grad_clip, or set train.on_nonfinite: skip to skip such updates")
        self.run.update_summary("training", {"status": "failed", "error": message, "step": self.stream.drawn})
        raise TrainingError(message)

    def _finish(self, elapsed: float) -> dict[str, Any]:
        records = [r for r in self.run.read_metrics() if r.get("split") == "online"]
        plot_online_curves(records, self.run.figures / "online.png", title=self.run.path.name,
                           threshold=self.online.loss_threshold)
        losses = [r["loss"] for r in records if r.get("loss") is not None]
        window = max(1, len(losses) // 10)
        summary = {"status": "completed", "mode": "online", "tasks": len(records), "updates": self.updates,
                   "skipped_updates": self.skipped_updates, "cumulative_loss": self.cumulative_loss,
                   "mean_loss": sum(losses) / len(losses) if losses else None, "window": window,
                   "loss_first_window": sum(losses[:window]) / window if losses else None,
                   "loss_last_window": sum(losses[-window:]) / window if losses else None,
                   "wall_time_s": round(elapsed, 2), "checkpoints": {"last": str(self.run.last)}}
        if self.online.loss_threshold is not None:
            reached = [r["shots_to_threshold"] for r in records[-window:] if r.get("shots_to_threshold") is not None]
            summary["last_window_reached_threshold"] = len(reached) / window
            summary["last_window_shots_to_threshold"] = sum(reached) / len(reached) if reached else None
        self.run.update_summary("training", summary)
        return summary

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, **config: Any) -> EvaluationReport:
        """Evaluate the meta-parameters at the end of the stream on held-out tasks, like
        :meth:`Trainer.evaluate <graphmeta.train.Trainer.evaluate>`; the ablation (message
        passing off) is learned online on the same stream, into ``RUN/ablation``."""
        options = EvaluateConfig.from_dict({**self.evaluate_config.to_dict(), **config}, "evaluate")
        tasks = self.stream.fixed(options.split, options.num_tasks)
        return evaluate_run(self.model, tasks, options, self.config.seed, self.run, self.ablation_model)

    def ablation_model(self) -> GraphMetaLearner:
        """The same configuration with message passing off, seeded alike, learned online on the
        same stream once into ``RUN/ablation`` (resumed if interrupted)."""
        torch.manual_seed(self.config.seed)
        model = GraphMetaLearner(self.model.graph, **{**self.model.config, "message_passing": False})
        config = {**self.config.to_dict(), **self.online.to_dict(), "run_dir": str(self.run.path), "name": "ablation"}
        learner = OnlineMetaLearner(model, self.family, **config)
        learner.family_spec = self.family_spec
        learner.fit(resume=True)
        return learner.model

    # --------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as tensors and primitive containers."""
        return {
            "step": self.stream.drawn,
            "model": self.model.state_dict(),
            "model_config": dict(self.model.config),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "stream": self.stream.state_dict(),
            "buffer": self.buffer.state_dict(),
            "rng": rng_state(),
            "online": {"updates": self.updates, "skipped_updates": self.skipped_updates,
                       "cumulative_loss": self.cumulative_loss},
            "train_config": self.config.to_dict(),
            "online_config": self.online.to_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any], source: str = "the state") -> None:
        """Restore a :meth:`state_dict`; a state that does not fit is a CheckpointError naming ``source``."""
        restore_model_and_optimizer(self.model, self.optimizer, state, source)
        restore_scheduler(self.scheduler, state["scheduler"])
        self.stream.load_state_dict(state["stream"])
        self.buffer.load_state_dict(state["buffer"])
        set_rng_state(state["rng"])
        self.updates = int(state["online"]["updates"])
        self.skipped_updates = int(state["online"]["skipped_updates"])
        self.cumulative_loss = float(state["online"]["cumulative_loss"])

    def save(self, path: str | Path | None = None) -> Path:
        """Write the full state to ``path`` (default ``checkpoints/last.pt``) atomically; a
        non-finite parameter is a TrainingError naming it, and nothing is written."""
        require_finite_parameters(self.model, f"after task {self.stream.drawn}")
        return save_checkpoint(self.state_dict(), self.run.last if path is None else path)

    def load(self, path: str | Path | None = None) -> OnlineMetaLearner:
        """Restore the full state from ``path`` (default ``checkpoints/last.pt``); returns ``self``."""
        path = self.run.last if path is None else Path(path)
        self.load_state_dict(load_checkpoint(path, required=CHECKPOINT_KEYS), source=f"checkpoint {path}")
        return self


def support_sizes(shots: int) -> list[int]:
    """The support sizes ``K'`` an arriving task is scored with: ``1, 2, 4, ...`` below ``shots``, then ``shots``."""
    sizes = [1 << i for i in range(shots.bit_length()) if 1 << i < shots]
    return [*sizes, shots]


def plot_online_curves(records: Sequence[Mapping[str, Any]], path: str | Path, title: str = "",
                       threshold: float | None = None, references: Mapping[str, float] | None = None) -> Any:
    """The learning curve of an online run from its ``metrics.jsonl`` records: the query loss of
    every arriving task (before it trains the model), its moving average over a tenth of the
    stream, and ``references`` (``{label: loss}``) as horizontal lines; with a ``threshold``,
    a second panel shows the support examples each task needed to reach it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = [(r["step"], r["loss"]) for r in records if r.get("loss") is not None]
    figure = Figure(figsize=(7, 6.4 if threshold is not None else 4.2))
    FigureCanvasAgg(figure)
    axes = figure.subplots(2 if threshold is not None else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    if points:
        steps, losses = torch.tensor(points, dtype=torch.float64).T
        width = max(1, len(points) // 10)
        kernel = torch.ones(1, 1, width, dtype=torch.float64) / width
        smoothed = torch.nn.functional.conv1d(losses[None, None], kernel)[0, 0]
        ax.plot(steps, losses, ".", color="C0", alpha=0.3, markersize=3, label="arriving task (scored before training)")
        ax.plot(steps[width - 1:], smoothed, "-", color="C0", label=f"moving average of {width} tasks")
    for n, (label, value) in enumerate((references or {}).items()):
        ax.axhline(value, color=f"C{n + 1}", linestyle="--", linewidth=1, label=label)
    if threshold is not None:
        ax.axhline(threshold, color="0.5", linestyle=":", linewidth=1, label=f"threshold {threshold:g}")
        needed = [(r["step"], r["shots_to_threshold"]) for r in records if r.get("shots_to_threshold") is not None]
        if needed:
            axes[1].plot(*zip(*needed), ".", color="C0", alpha=0.4, markersize=3)
            axes[1].set_yscale("log", base=2)
            sizes = sorted({shots for _, shots in needed})
            axes[1].set_yticks(sizes, [str(size) for size in sizes])
        axes[1].set_ylabel("support examples to reach\nthe threshold (if reached)")
        axes[1].grid(alpha=0.3)
    ax.set_ylabel("query loss after adaptation")
    ax.set_title(title or "online meta-learning")
    if ax.lines:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    axes[-1].set_xlabel("task of the stream")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return figure
