"""`Trainer`: episodic (batch) meta-training of a :class:`GraphMetaLearner` on a task family.

One unit of the run loop (:mod:`.run_loop`) is step ``s``: meta-batch ``s`` of the task stream
(:class:`EpisodeSampler`), its meta-loss, and one Adam step on every parameter of the model
(meta-initialisation, inner rates, message passing), with the gradient norm clipped to
``grad_clip`` and the rate ``outer_lr * m(s)`` of the schedule (:mod:`.schedules`). At the
start and every ``val_every`` steps the model adapts to the same fixed validation tasks; the
state with the lowest validation query loss is kept as ``best.pt``, and
``early_stopping_patience`` validations without a new best end the run. When ``fit`` returns,
the model holds the best weights.

A run is a function of its config: ``seed`` fixes the model (when built from a config), the
task stream and every generator, and a run resumed from ``last.pt`` ends bit for bit where the
uninterrupted run would have. A run resumed with other ``steps`` or schedule settings (accepted
with ``allow_changes``) goes on from where it stopped on the schedule of its new config.

**Empirical-Bayes start.** A new run of a model with :class:`~graphmeta.learners.Linear` nodes on
a family that holds its training groups' rows (``family.grouped_rows``, as a
:class:`~graphmeta.DataFrameFamily` does) first sets those nodes' priors to the groups' type-II
maximum likelihood (:func:`empirical_bayes_start`): for a regression whose coefficients vary from
group to group this is the linear mixed model's fit, so meta-training starts where the
statistician ends and only refines it. A resumed run takes its prior from the checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..data import TaskBatch
from ..errors import ConfigError
from ..learners.banks.linear import LinearBank
from ..model import GraphMetaLearner
from .config import TrainConfig
from .episode_sampler import Family
from .evaluation import nanmean, query_results
from .run_loop import RunLoop


class Trainer(RunLoop):
    """Meta-train ``model`` on tasks from ``family`` under ``train``, the ``train:`` section of a run
    config (:class:`~graphmeta.train.config.TrainConfig`), or its keys as keyword arguments;
    ``hooks`` are those of :mod:`.hooks`.

    Example::

        family = graphmeta.load_family("sinusoid")
        model = graphmeta.GraphMetaLearner(family.graph, inner_steps=5, inner_lr=0.01)
        trainer = graphmeta.Trainer(model, family, steps=2000, shots=10, name="sinusoid")
        trainer.fit()                    # runs/sinusoid/: config, metrics, checkpoints, summary
        report = trainer.evaluate()      # numbers, also in runs/sinusoid/evaluation-test-5steps.json
        print(report.table())
        plot_run_figures(trainer.run, report)  # from graphmeta.train.figures: curves, per-node graphs

    ``family_spec`` is the ``family:`` section written to ``config.yaml`` (so ``graphmeta
    evaluate`` can rebuild the run); :meth:`from_config` sets it, otherwise it comes from the
    family's ``card`` and ``config`` (:func:`~graphmeta.train.config.family_spec`).
    ``evaluate_config`` holds the defaults of :meth:`evaluate`.
    """

    unit = "step"
    split = "train"
    validates = True

    def __init__(self, model: GraphMetaLearner, family: Family, train: TrainConfig | None = None, *,
                 hooks: Iterable[Any] = (), **config: Any) -> None:
        train = TrainConfig.from_given(train, config, "Trainer")
        if train.mode != "batch":
            raise ConfigError(f"Trainer runs train.mode 'batch', got {train.mode!r}: use "
                              "graphmeta.OnlineMetaLearner for online meta-learning")
        super().__init__(model, family, train, stream_batch_size=train.meta_batch_size, total_updates=train.steps,
                         hooks=hooks)
        self._validation_tasks: TaskBatch | None = None

    def begin_run(self) -> None:
        """A new run starts with the empirical-Bayes start of the Linear nodes (module docstring)."""
        empirical_bayes_start(self.model, self.family)

    def total_units(self) -> int:
        return self.config.steps

    def run_unit(self) -> tuple[dict[str, float], dict[str, Any]]:
        """One outer step on the next meta-batch; its meta-loss, gradient norm and, on the step that
        ends a log window, the meta-batch's mean ``loss_before``, ``loss_after`` and ``accuracy_after``.
        Those cost a forward pass more (``loss_before`` reads the unadapted weights; about 9% of an
        ``alarm-latent`` step), so the eager engine takes them once per ``metrics.jsonl`` record,
        and the record gives the loss of every step of its window beside them. A compiled engine
        takes them at every step, since switching them would compile the step twice."""
        metrics = self.ends_log_window(self.step + 1) or self.model.is_compiled
        update = self.outer_step(self.sampler.next(), metrics=metrics)
        if update is None:
            return {}, {}
        # outer_step passes on finite updates only, and meta_update measures the gradient of each
        assert update.grad_norm is not None
        values = {"loss": update.loss, "grad_norm": update.grad_norm,
                  **{key: nanmean(value) for key, value in update.metrics.items()}}
        return {key: float(value.detach()) for key, value in values.items()}, {}

    def validate(self) -> dict[str, Any]:
        """Query loss (total and per node) and accuracy on the fixed validation tasks after adaptation,
        and the loss before it: each node's own loss, the one meta-training minimises (a Linear
        node's predictive NLL, not the squared error that evaluation tables compare methods on), so
        the best checkpoint is chosen on what training optimises and the curves share a scale."""
        if self._validation_tasks is None:
            self._validation_tasks = self.sampler.fixed("val", self.config.val_tasks)
        tasks = self._validation_tasks
        self.model.eval()
        after = query_results(self.model, tasks, self.config.meta_batch_size, self.model.adapt, own_loss=True)
        before = query_results(self.model, tasks, self.config.meta_batch_size,
                               lambda chunk: self.model.adapt(chunk, steps=0), own_loss=True)
        return {"loss": after.total_loss().mean, "loss_before": before.total_loss().mean,
                "accuracy": after.total_accuracy().mean,
                "per_node": {node: after.node_loss(n).mean for n, node in enumerate(self.model.graph.names)}}

    def summary_fields(self) -> dict[str, Any]:
        train = [r for r in self.run.read_metrics() if r["split"] == "train" and "loss" in r]
        return {"steps": self.step, "final_train_loss": train[-1]["loss"] if train else None}


def empirical_bayes_start(model: GraphMetaLearner, family: Family) -> None:
    """Set the prior of every Linear node of ``model`` whose spec asks for it (``empirical_bayes``)
    to its type-II maximum likelihood over the training groups of ``family``
    (:meth:`LinearBank.empirical_bayes_start <graphmeta.learners.banks.linear.LinearBank.empirical_bayes_start>`);
    nothing where the model has no Linear node or the family cannot give its groups' rows
    (``grouped_rows``)."""
    banks = [bank for bank in model.banks if isinstance(bank, LinearBank) and bank.spec.empirical_bayes]
    if not banks or not hasattr(family, "grouped_rows"):
        return
    parameter = next(model.parameters())
    groups = family.grouped_rows("train").to(device=parameter.device, dtype=parameter.dtype)
    for bank in banks:
        bank.empirical_bayes_start(groups)
