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
``buffer`` (tasks stored). :func:`~graphmeta.train.figures.plot_online_curves` draws the learning curve.

An arriving task is one unit of the run loop (:mod:`.run_loop`), which owns the rest: the
progress bar, the meta-updates' non-finite handling, checkpoints, hooks and the summary. The
stream is task ``i`` = ``family.sample(1, shots, query_shots, "train", seed=s_i)`` of the
loop's :class:`~graphmeta.train.episode_sampler.EpisodeSampler` of meta-batch size 1, so it is a
function of ``seed`` alone. Checkpoints (``checkpoints/last.pt`` every ``checkpoint_every``
tasks) hold the model, Adam, the schedule's position, the stream position, the buffer's
tensors and every RNG, and a run resumed from one ends bit for bit where the uninterrupted run
would have; resumed with a longer stream (``allow_changes``), the schedule stretches to the new
number of meta-updates. An online run does not validate, so it keeps no ``best.pt``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ..data import TaskBatch
from ..errors import ConfigError, DataError, check_keys
from ..model import GraphMetaLearner
from ..validation import parameters
from .buffer import TaskBuffer
from .config import OnlineConfig, TrainConfig
from .episode_sampler import Family
from .evaluation import nanmean, query_results
from .run_loop import RunLoop


class OnlineMetaLearner(RunLoop):
    """Meta-learn ``model`` online from a stream of tasks of ``family`` (FTML).

    ``train`` and ``online`` are the ``train:`` (:class:`~graphmeta.train.config.TrainConfig`;
    ``mode`` is ``online``) and ``online:`` (:class:`~graphmeta.train.config.OnlineConfig`) sections
    of a run config, or their keys are keyword arguments; ``hooks`` are those of :mod:`.hooks` (a
    unit is an arriving task). Example::

        family = graphmeta.load_family("alarm-dirichlet")
        model = graphmeta.GraphMetaLearner(family.graph, inner_steps=1, inner_lr=0.5)
        learner = graphmeta.OnlineMetaLearner(model, family, tasks=300, updates_per_task=1,
                                              buffer_size=100, shots=10, outer_lr=3e-3, name="online")
        learner.fit()                  # runs/online/: per-task losses, checkpoints, summary
        report = learner.evaluate()
        print(report.table())
        plot_run_figures(learner.run, report)  # from graphmeta.train.figures: figures/online.png, ...
    """

    unit = "task"
    split = "online"
    kind = "online"
    sections = ("online",)
    extra_checkpoint_keys = ("buffer", "online")

    def __init__(self, model: GraphMetaLearner, family: Family, train: TrainConfig | None = None,
                 online: OnlineConfig | None = None, *, hooks: Iterable[Any] = (), **config: Any) -> None:
        online_keys = parameters(OnlineConfig)
        check_keys(config, [*online_keys, *parameters(TrainConfig)], "OnlineMetaLearner")
        self.online = OnlineConfig.from_given(online, {k: v for k, v in config.items() if k in online_keys}, "online")
        train = TrainConfig.from_given(train, {k: v for k, v in config.items() if k not in online_keys}, "train",
                                       defaults={"mode": "online"})
        if train.mode != "online":
            raise ConfigError(f"OnlineMetaLearner runs mode 'online', got mode {train.mode!r}: "
                              "use Trainer for batch meta-training")
        super().__init__(model, family, train, stream_batch_size=1,
                         total_updates=self.online.tasks * self.online.updates_per_task, hooks=hooks)
        self.buffer = TaskBuffer(family.graph, self.online.buffer_size, self.online.buffer_policy, self.config.seed)
        self.cumulative_loss = 0.0

    def total_units(self) -> int:
        return self.online.tasks

    @property
    def log_every(self) -> int:
        return 1  # a record per arriving task: the online learning curve

    def run_unit(self) -> tuple[dict[str, float], dict[str, Any]]:
        """One arrival: score the next task with the current meta-parameters, store it, take the
        ``M`` meta-updates. Metrics: its ``loss`` and ``accuracy``, the mean ``train_loss`` of the
        updates; details: the rest of its record (see the module docstring)."""
        task = self.sampler.next()
        scores = self.score(task)
        self.cumulative_loss += scores["loss"]
        self.buffer.add(task)
        updates = [self.outer_step(self.buffer.sample(self.config.meta_batch_size), metrics=False)
                   for _ in range(self.online.updates_per_task)]
        losses = [float(update.loss.detach()) for update in updates if update is not None]
        metrics = {"loss": scores.pop("loss"), "accuracy": scores.pop("accuracy"),
                   "train_loss": sum(losses) / len(losses) if losses else float("nan")}
        details = {**scores, "cumulative_loss": self.cumulative_loss, "buffer": len(self.buffer),
                   "updates": self.updates}
        return metrics, details

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

    def summary_fields(self) -> dict[str, Any]:
        records = [r for r in self.run.read_metrics() if r.get("split") == "online"]
        losses = [r["loss"] for r in records if r.get("loss") is not None]
        window = max(1, len(losses) // 10)
        summary = {"mode": "online", "tasks": len(records), "cumulative_loss": self.cumulative_loss,
                   "mean_loss": sum(losses) / len(losses) if losses else None, "window": window,
                   "loss_first_window": sum(losses[:window]) / window if losses else None,
                   "loss_last_window": sum(losses[-window:]) / window if losses else None}
        if self.online.loss_threshold is not None:
            reached = [r["shots_to_threshold"] for r in records[-window:] if r.get("shots_to_threshold") is not None]
            summary["last_window_reached_threshold"] = len(reached) / window
            summary["last_window_shots_to_threshold"] = sum(reached) / len(reached) if reached else None
        return summary

    def extra_state(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "online": {"cumulative_loss": self.cumulative_loss},
                "online_config": self.online.to_dict()}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.cumulative_loss = float(state["online"]["cumulative_loss"])


def support_sizes(shots: int) -> list[int]:
    """The support sizes ``K'`` an arriving task is scored with: ``1, 2, 4, ...`` below ``shots``, then ``shots``."""
    sizes = [1 << i for i in range(shots.bit_length()) if 1 << i < shots]
    return [*sizes, shots]
