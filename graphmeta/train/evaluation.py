"""Evaluation against baselines: per-node and total query loss and accuracy over held-out tasks.

For every task ``t`` and node ``n`` with observed query examples, ``L[t, n]`` is the query
loss (parents teacher-forced) after a method has seen the support set (of a regression node its
squared error, whatever its learner's own loss, so that every method is on one scale), ``A[t, n]`` the
accuracy of classification nodes. A regression node is also scored as a statistician scores a
model (:meth:`~graphmeta.AdaptedGraph.evaluate`): its mean squared error ``MSE[t, n]`` and the
negative log-likelihood per query row of its predictive distribution ``NLL[t, n]`` (Gaussian with
the meta-learned noise scale for MLP and GNN nodes, the Student-t posterior predictive for Linear
ones), so a model that knows how far off it is gets credit for it. A task's total is the mean
over its nodes, ``L_t = mean_n L[t, n]`` (accuracy: over its classification nodes; MSE and NLL:
over its regression nodes). Every number is reported
as ``mean ± h`` over tasks with the 95% Student-t interval

    h = t_{0.975, T - 1} * s / sqrt(T),     s the sample standard deviation over the T tasks.

A comparison with the adapted model is paired: ``d_t = L_t(method) - L_t(adapted)`` on the same
task, reported the same way; it is far tighter than the two intervals apart, since both
methods share each task's difficulty.

Methods: ``no_adaptation`` (the meta-learned initialisation, zero inner steps), ``adapted``
(the inner loop, and message passing when on), ``from_scratch`` (fresh learners trained with
Adam on each task's support set alone) and ``no_message_passing`` (the ablation: the same
configuration meta-trained with message passing off). A graph with latent subtasks also meets
``monolithic``: one MLP from every input to the observed sinks, meta-trained with the same
configuration (:class:`~graphmeta.families.monolithic.MonolithicFamily`), scored on the sinks; and
where its family can label the hidden nodes (``family.supervised()``, the same tasks with every node
observed), the reference ``supervised``: the graph meta-trained with those labels, scored on the
same tasks' observed nodes (what the latent nodes cost).

A baseline is only as fair as its settings. Unless the user fixes them, ``from_scratch`` trains
at the rate and step count, from ``SCRATCH_RATES`` x ``SCRATCH_STEPS``, with the lowest query
loss on the validation tasks (never on the tasks it is scored on): too few steps leave the
learners at their random start, too many overfit K examples, and the validation query loss
picks between the two as early stopping would. The row's label names the settings.

A family that can hand over its training rows, a table (``family.pooled_rows()``,
:class:`~graphmeta.families.DataFrameFamily`), gets one more baseline: ``pooled``, one model of
fresh learners trained with Adam on every training row as if they were one task (minibatches of
``POOLED_BATCH_ROWS`` rows; the rate, and the steps by early stopping, chosen by the validation
tasks' query loss without adaptation), then used on every task as it is. Its training rows task by
task (``family.grouped_rows()``) bring the statistician's rows (:mod:`.classical_baselines`): a
linear mixed model's BLUP, per-task ridge toward pooled least squares, the support mean and pooled
least squares, each fitted once on the training rows.

The baselines' predictive variance: the pooled model's noise is the mean squared residual of each
output on the training rows, the maximum-likelihood Gaussian noise. Learners trained from scratch
on K rows have no honest one (their support residuals go to 0 as they fit them), so their NLL is
undefined and shows ``-``.

In a data-parallel run the tasks are split over the processes and the per-task results gathered
in task order (:mod:`.distributed`), so every process gets the report one process would.

The from-scratch baseline sees nothing of the meta-learned model, so a run's evaluation keeps it
in the :mod:`.baseline_cache` of its runs folder: evaluating again, with other adaptation steps,
or another run on the same tasks reads it back. An evaluation shows a progress bar of its
stages (unless ``train.progress`` is false) and reports its wall time (``wall_time_s``).

A learner of the run loop evaluates its run with :func:`evaluate_run`: the fixed tasks of its task
stream, the ablation trained beside the run (:func:`train_ablation`), a table's training rows for
the pooled baseline (:func:`pooled_rows`), the report written into the run directory.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import torch
from tqdm.auto import tqdm

from ..adapted_graph import AdaptedGraph
from ..data import Split, TaskBatch
from ..families.base import TaskFamily
from ..families.monolithic import MonolithicFamily, unsupported
from ..model import GraphMetaLearner
from ..taskgraph import TaskGraph
from .baseline_cache import CACHE_FOLDER, cached, digest
from .classical_baselines import CLASSICAL_METHODS, classical_baselines, grouped_training_rows
from .config import EvaluateConfig
from .distributed import SINGLE_PROCESS, DataParallelGroup
from .episode_sampler import Family

METHODS = {
    "no_adaptation": "no adaptation",
    "adapted": "after adaptation",
    "from_scratch": "trained from scratch",
    "no_message_passing": "ablation: no message passing",
    "monolithic": "monolithic MLP, no graph",
    "supervised": "reference: hidden nodes labelled",
    "pooled": "pooled model, no adaptation",
    **CLASSICAL_METHODS,
}
#: What the baselines choose from on the validation tasks (see the module docstring).
#: Tasks an evaluation takes where the family draws them anew (``evaluate.num_tasks: null``).
DEFAULT_TASKS = 100
SCRATCH_RATES = (0.001, 0.01, 0.1)
SCRATCH_STEPS = (10, 30, 100, 300)
POOLED_RATES = (0.001, 0.01)
POOLED_BATCH_ROWS = 256
POOLED_CHECK_EVERY = 100
POOLED_MAX_STEPS = 3000
POOLED_PATIENCE = 3


@dataclass(frozen=True)
class Estimate:
    """A mean over tasks and the half-width of its 95% confidence interval."""

    mean: float
    ci95: float
    count: int

    @classmethod
    def over_tasks(cls, values: torch.Tensor) -> Estimate:
        """The estimate from ``values [T]``, ignoring NaN (tasks where the quantity is undefined)."""
        values = values[~values.isnan()].double()
        count = values.numel()
        if count == 0:
            return cls(math.nan, math.nan, 0)
        mean = float(values.mean())
        if count < 2:
            return cls(mean, math.nan, count)
        from scipy import stats  # here, not at the top: it takes seconds to import, and `import graphmeta` should not

        half_width = float(stats.t.ppf(0.975, count - 1) * values.std() / math.sqrt(count))
        return cls(mean, half_width, count)

    def __format__(self, spec: str) -> str:
        """``"0.1234 ± 0.0056"``; the spec ``"+"`` shows the sign of the mean."""
        if math.isnan(self.mean):
            return "-"
        mean = f"{self.mean:{spec}.4f}"
        return f"{mean} ± {self.ci95:.4f}" if not math.isnan(self.ci95) else mean

    def __str__(self) -> str:
        return format(self, "")

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": self.ci95, "tasks": self.count}


@dataclass(frozen=True)
class MethodResult:
    """Per (task, node) query ``loss`` and ``accuracy`` ``[T, N]`` of one method, and of its
    regression nodes the mean squared error ``mse`` and the predictive negative log-likelihood per
    row ``nll`` (:meth:`~graphmeta.AdaptedGraph.evaluate`); NaN where undefined (no observed query
    example; accuracy of a regression node; mse and nll of a classification node, or of a method
    without a predictive variance). ``mse`` and ``nll`` left out are all NaN."""

    loss: torch.Tensor
    accuracy: torch.Tensor
    mse: torch.Tensor | None = None
    nll: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for name in ("mse", "nll"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, torch.full_like(self.loss, math.nan))

    def total_loss(self) -> Estimate:
        return Estimate.over_tasks(nanmean(self.loss, dim=1))

    def total_accuracy(self) -> Estimate:
        return Estimate.over_tasks(nanmean(self.accuracy, dim=1))

    def node_loss(self, node: int) -> Estimate:
        return Estimate.over_tasks(self.loss[:, node])

    def node_accuracy(self, node: int) -> Estimate:
        return Estimate.over_tasks(self.accuracy[:, node])

    def total_mse(self) -> Estimate:
        return Estimate.over_tasks(nanmean(self.mse, dim=1))

    def total_nll(self) -> Estimate:
        return Estimate.over_tasks(nanmean(self.nll, dim=1))

    def node_mse(self, node: int) -> Estimate:
        return Estimate.over_tasks(self.mse[:, node])

    def node_nll(self, node: int) -> Estimate:
        return Estimate.over_tasks(self.nll[:, node])


@dataclass(frozen=True)
class EvaluationReport:
    """The results of every method on the same ``num_tasks`` tasks of ``split``."""

    name: str
    split: str
    shots: int
    adapt_steps: int
    nodes: list[str]
    methods: dict[str, MethodResult]
    #: How the tuned baselines were set, ``{method: "100 steps at rate 0.01"}``.
    settings: dict[str, str] = field(default_factory=dict)
    #: Wall time of the evaluation, baselines included (``None``: not measured).
    wall_time_s: float | None = None
    #: Tasks of a table whose support took fewer rows than ``shots`` (all but one of their rows).
    capped_tasks: int = 0
    #: Whether every task gave every row past its support as query (the tasks of a table).
    whole_tasks: bool = False

    @property
    def num_tasks(self) -> int:
        return next(iter(self.methods.values())).loss.shape[0]

    @property
    def has_accuracy(self) -> bool:
        return any(not result.accuracy.isnan().all() for result in self.methods.values())

    @property
    def regression_nodes(self) -> list[int]:
        """The nodes some method has a squared error for: the regression nodes with query rows."""
        return [n for n in range(len(self.nodes))
                if any(not result.mse[:, n].isnan().all() for result in self.methods.values())]

    def node_means(self, method: str) -> dict[str, float]:
        """``{node: mean query loss}`` of ``method`` (for colouring a task graph)."""
        return {node: self.methods[method].node_loss(n).mean for n, node in enumerate(self.nodes)}

    def paired_difference(self, method: str, reference: str = "adapted") -> Estimate:
        """``L_method - L_reference`` task by task (the same tasks), mean ± 95% CI over tasks:
        positive when ``reference`` has the lower loss. Pairing removes the task-to-task
        variation both share, so this interval is much tighter than the two separate ones."""
        per_task = [nanmean(self.methods[key].loss, dim=1) for key in (method, reference)]
        return Estimate.over_tasks(per_task[0] - per_task[1])

    def improvement(self) -> dict[str, float]:
        """``{node: mean over tasks of L_no_adaptation - L_adapted}``: what adaptation gains, per node."""
        gain = self.methods["no_adaptation"].loss - self.methods["adapted"].loss
        return {node: Estimate.over_tasks(gain[:, n]).mean for n, node in enumerate(self.nodes)}

    def label(self, method: str) -> str:
        """The row label of ``method`` in :meth:`table`; the adapted model's names its steps, a tuned
        baseline its settings."""
        if method == "adapted":
            return f"{METHODS[method]} ({_count(self.adapt_steps, 'step')})"
        if method in self.settings:
            return f"{METHODS[method]} ({self.settings[method]})"
        return METHODS[method]

    def to_dict(self) -> dict[str, Any]:
        methods = {}
        regression = self.regression_nodes
        for key, result in self.methods.items():
            per_node = {}
            for n, node in enumerate(self.nodes):
                per_node[node] = {"loss": result.node_loss(n).to_dict()}
                if not result.accuracy[:, n].isnan().all():
                    per_node[node]["accuracy"] = result.node_accuracy(n).to_dict()
                if n in regression:
                    per_node[node] |= {"mse": result.node_mse(n).to_dict(), "nll": result.node_nll(n).to_dict()}
            methods[key] = {"label": METHODS[key], "loss": result.total_loss().to_dict(), "per_node": per_node}
            if regression:
                methods[key] |= {"mse": result.total_mse().to_dict(), "nll": result.total_nll().to_dict()}
            if key in self.settings:
                methods[key]["settings"] = self.settings[key]
            if key != "adapted":
                methods[key]["loss_minus_adapted"] = self.paired_difference(key).to_dict()
            if self.has_accuracy:
                methods[key]["accuracy"] = result.total_accuracy().to_dict()
        return {"name": self.name, "split": self.split, "num_tasks": self.num_tasks, "shots": self.shots,
                "adapt_steps": self.adapt_steps, "nodes": list(self.nodes), "methods": methods,
                "capped_tasks": self.capped_tasks, "whole_tasks": self.whole_tasks,
                **({} if self.wall_time_s is None else {"wall_time_s": self.wall_time_s})}

    def table(self, per_node: bool = False) -> str:
        """The totals as a text table (and the per-node results with ``per_node``); the squared
        error and predictive negative log-likelihood of the regression nodes where there are any
        (``-``: a method without a predictive variance)."""
        regression = self.regression_nodes
        header = (["method", "query loss", "loss - adapted (paired)"] + (["accuracy"] if self.has_accuracy else [])
                  + (["query MSE", "query NLL"] if regression else []))
        rows = []
        for key, result in self.methods.items():
            difference = "" if key == "adapted" else f"{self.paired_difference(key):+}"
            rows.append([self.label(key), str(result.total_loss()), difference]
                        + ([str(result.total_accuracy())] if self.has_accuracy else [])
                        + ([str(result.total_mse()), str(result.total_nll())] if regression else []))
        took = "" if self.wall_time_s is None else f", evaluated in {self.wall_time_s:.1f} s"
        shots = f"{self.shots} shots"
        if self.capped_tasks:
            shots += f" (all rows but one on the {_count(self.capped_tasks, 'smaller task')})"
        if self.whole_tasks:
            shots += ", every other row as query"
        title = (f"{self.name}: {self.num_tasks} {self.split} tasks, {shots}, "
                 f"{_count(self.adapt_steps, 'adaptation step')} (mean ± 95% CI over tasks{took})")
        text = [title, _format(header, rows)]
        if per_node:
            header = ["node", *(self.label(key) for key in self.methods)]
            for title, estimate, nodes in (("query loss", MethodResult.node_loss, range(len(self.nodes))),
                                           ("query MSE", MethodResult.node_mse, regression),
                                           ("query NLL", MethodResult.node_nll, regression)):
                rows = [[self.nodes[n], *(str(estimate(result, n)) for result in self.methods.values())]
                        for n in nodes]
                if rows:
                    text += ["", f"per-node {title}", _format(header, rows)]
        return "\n".join(text)


def evaluate_run(learner: Any, options: EvaluateConfig) -> EvaluationReport:
    """Evaluate the model of ``learner`` (a :class:`~.run_loop.RunLoop`) as ``options`` say: on
    ``num_tasks`` fixed tasks of ``split`` of its task stream against the baselines, the ablation
    trained first (:func:`train_ablation`) with ``ablation`` and message passing on. The writer
    process writes ``evaluation-<split>-<k>steps.json`` and the ``evaluation`` section of ``summary.json``."""
    model, config, sampler, run, group = learner.model, learner.config, learner.sampler, learner.run, learner.parallel
    started = perf_counter()
    ablation = learner.train_ablation() if options.ablation and model.config["message_passing"] else None
    steps = model.config["inner_steps"] if options.adapt_steps is None else options.adapt_steps
    fixed = learner.family.fixed_tasks(options.split) if isinstance(learner.family, TaskFamily) else None
    num_tasks = options.num_tasks or (fixed[0] if fixed else DEFAULT_TASKS)
    query = fixed[1] if fixed else None
    tasks = sampler.fixed(options.split, num_tasks, options.shots, query=query)
    peers = trained_peers(learner, options, steps, num_tasks, query)
    report = evaluate_methods(model, tasks, steps, sampler.fixed("val", config.val_tasks), options.tasks_per_batch,
                              config.seed, run.path.name, options.split, options.scratch_steps, options.scratch_lr,
                              ablation, group, pooled_rows(learner.family), config.progress and group.is_writer,
                              run.path.parent / CACHE_FOLDER, grouped_training_rows(learner.family), peers)
    asked = torch.as_tensor(sampler.fixed_shots(num_tasks, options.shots))
    capped = int((tasks.support.task_rows < asked).sum()) if fixed else 0
    report = dataclasses.replace(report, wall_time_s=round(perf_counter() - started, 2), capped_tasks=capped,
                                 whole_tasks=fixed is not None)
    if group.is_writer:
        run.write_json(run.evaluation(report.split, report.adapt_steps), report.to_dict())
        run.update_summary("evaluation", report.to_dict())
    return report


def train_ablation(learner: Any) -> GraphMetaLearner:
    """The ablation of the run of ``learner`` (a :class:`~.run_loop.RunLoop`): the same configuration
    with message passing off, seeded alike and trained by the same kind of learner into
    ``RUN/ablation`` once (resumed if interrupted, reloaded when done, following the run's config
    when that changed on resume); its model."""
    torch.manual_seed(learner.config.seed)
    model = GraphMetaLearner(learner.model.graph, **{**learner.model.config, "message_passing": False})
    return _train_beside(learner, model, learner.family, learner.run.ablation)


def _train_beside(learner: Any, model: GraphMetaLearner, family: Any, folder: Path) -> GraphMetaLearner:
    """``model`` trained on ``family`` by a learner of ``learner``'s kind and configuration into the run
    folder ``folder`` (resumed if interrupted, reloaded when done, following the run's config when that
    changed on resume); the trained model."""
    train = learner.config.replace(run_dir=str(folder.parent), name=folder.name)
    sections = {name: getattr(learner, name) for name in learner.sections}
    beside = type(learner)(model, family, train, **sections)
    beside.family_spec = learner.family_spec
    beside.fit(resume=True, allow_changes=True)
    return beside.model


def trained_peers(learner: Any, options: EvaluateConfig, steps: int, num_tasks: int, query: int | None
                  ) -> dict[str, Peer]:
    """The monolithic baseline and the supervised reference of the run of ``learner`` where they apply
    and ``options`` ask for them (module docstring), trained first; each scores ``num_tasks`` fixed tasks
    of ``options.split`` with ``query`` query rows, adapted ``steps`` steps."""
    graph, group, tasks_per_batch = learner.model.graph, learner.parallel, options.tasks_per_batch
    peers: dict[str, Peer] = {}
    if options.monolithic and unsupported(graph) is None:
        monolithic, repacking = train_monolithic(learner), MonolithicFamily(learner.family)
        peers["monolithic"] = lambda share: monolithic_results(monolithic, repacking, share, tasks_per_batch, steps)
    labelled = supervised_family(learner.family)
    if options.supervised and labelled is not None:
        supervised, same_draws = train_supervised(learner, labelled), copy.copy(learner.sampler)
        same_draws.family = labelled
        labelled_tasks = same_draws.fixed(options.split, num_tasks, options.shots, query=query)
        peers["supervised"] = lambda share: observed_only(query_results(  # the share's tasks, labelled
            supervised, group.take(labelled_tasks), tasks_per_batch,
            lambda chunk: supervised.adapt(chunk, steps=steps)), graph)
    return peers


def train_monolithic(learner: Any) -> GraphMetaLearner:
    """The monolithic baseline of the run of ``learner`` (module docstring): one MLP on the run's family
    repacked (:class:`~graphmeta.families.monolithic.MonolithicFamily`), with the run's model settings
    but message passing (one node has no neighbours), seeded alike and trained by the same kind of
    learner into ``RUN/monolithic`` once; its model."""
    torch.manual_seed(learner.config.seed)
    family = MonolithicFamily(learner.family)
    model = GraphMetaLearner(family.graph, **{**learner.model.config, "message_passing": False})
    return _train_beside(learner, model, family, learner.run.monolithic)


def supervised_family(family: Family) -> Family | None:
    """The family's tasks with their hidden nodes labelled (``family.supervised()``) where it has latent
    subtasks and can; else ``None``."""
    return family.supervised() if family.graph.latent and hasattr(family, "supervised") else None


def train_supervised(learner: Any, family: Family) -> GraphMetaLearner:
    """The fully supervised reference of the run of ``learner`` (module docstring): the run's model
    settings on ``family`` (its family with the hidden nodes labelled), seeded alike and trained by the
    same kind of learner into ``RUN/supervised`` once; its model."""
    torch.manual_seed(learner.config.seed)
    model = GraphMetaLearner(family.graph, **learner.model.config)
    return _train_beside(learner, model, family, learner.run.supervised).eval()


def observed_only(result: MethodResult, graph: TaskGraph) -> MethodResult:
    """``result`` with ``graph``'s latent nodes not scored (NaN), as a graph with them scores them."""
    latent = torch.tensor([not graph.subtask(name).observed for name in graph.names])
    return MethodResult(*(getattr(result, name).masked_fill(latent, math.nan)
                          for name in ("loss", "accuracy", "mse", "nll")))


def monolithic_results(model: GraphMetaLearner, family: MonolithicFamily, tasks: TaskBatch, tasks_per_batch: int,
                       adapt_steps: int) -> MethodResult:
    """The query results of the monolithic ``model`` on ``tasks`` (of the wrapped graph), per sink."""
    model.eval()
    results: dict[str, list[torch.Tensor]] = {name: [] for name in ("loss", "accuracy", "mse", "nll")}
    for chunk in _chunks(tasks, tasks_per_batch):
        repacked = family.repacked(chunk)
        scores = family.scores(model.adapt(repacked, steps=adapt_steps), repacked)
        for name, values in results.items():
            values.append(scores[name])
    return MethodResult(*(torch.cat(results[name]) for name in ("loss", "accuracy", "mse", "nll")))


#: A learner trained beside the run, scored on the same tasks in its own form: its results on a
#: process's share of the evaluated tasks (:meth:`DataParallelGroup.take`), given that share.
Peer = Callable[[TaskBatch], MethodResult]


def pooled_rows(family: Family) -> Split | None:
    """The training rows of a family that holds a table (``family.pooled_rows``), for the pooled
    baseline of :func:`evaluate_methods`; else ``None``."""
    return family.pooled_rows("train") if hasattr(family, "pooled_rows") else None


def evaluate_methods(model: GraphMetaLearner, tasks: TaskBatch, adapt_steps: int, validation: TaskBatch,
                     tasks_per_batch: int, seed: int, name: str, split: str, scratch_steps: int | None = None,
                     scratch_lr: float | None = None, ablation: GraphMetaLearner | None = None,
                     group: DataParallelGroup = SINGLE_PROCESS, pooled_rows: Split | None = None,
                     progress: bool = False, cache: Path | None = None,
                     grouped_rows: Split | None = None,
                     peers: Mapping[str, Peer] | None = None) -> EvaluationReport:
    """Evaluate ``model`` (and the ``ablation`` model, if given) and the baselines on ``tasks``,
    both models in eval mode; ``name`` and ``split`` label the report. The from-scratch baseline
    trains ``scratch_steps`` Adam steps at ``scratch_lr``, each chosen on the ``validation`` tasks
    where ``None``; with a table's training rows (``pooled_rows``) the pooled baseline joins
    (module docstring), and with them task by task (``grouped_rows``) the classical ones
    (:mod:`.classical_baselines`); ``peers``, the learners trained beside the run on its tasks in another
    form (the monolithic baseline, the supervised reference), by name. Each process of ``group``
    evaluates its share of the tasks; with ``progress`` a progress bar counts the stages (one per method). ``cache``: the folder of the
    :mod:`.baseline_cache` that keeps the from-scratch baseline (``None``: none)."""
    for evaluated in (model, ablation):
        if evaluated is not None:
            evaluated.eval()
    share = group.take(tasks)
    stages = (3 + (pooled_rows is not None) * 2 + (grouped_rows is not None) + (ablation is not None)
              + len(peers or {}))
    with tqdm(total=stages, desc=f"evaluating {name}", unit="stage", disable=not progress, dynamic_ncols=True,
              leave=False) as bar:
        def stage(label: str, result: Any) -> Any:
            bar.set_postfix_str(label, refresh=False)
            bar.update()
            return result

        scratch = stage("from scratch", scratch_baseline(model, share, validation, tasks_per_batch, seed,
                                                         scratch_steps, scratch_lr, cache))
        steps, rate = scratch["steps"], scratch["rate"]
        chosen = [what for what, given in (("steps", scratch_steps), ("rate", scratch_lr)) if given is None]
        methods = {
            "no_adaptation": stage("no adaptation", query_results(model, share, tasks_per_batch,
                                                                  lambda chunk: model.adapt(chunk, steps=0))),
            "adapted": stage("adapted", query_results(model, share, tasks_per_batch,
                                                      lambda chunk: model.adapt(chunk, steps=adapt_steps))),
            "from_scratch": MethodResult(scratch["loss"], scratch["accuracy"], mse=scratch["mse"]),
        }
        how = "" if not chosen else ", chosen on validation tasks" if len(chosen) == 2 else f", {chosen[0]} chosen on validation tasks"
        settings = {"from_scratch": f"{_count(steps, 'step')} at rate {rate:g}{how}"}
        if pooled_rows is not None:
            pooled, pooled_steps, pooled_rate = stage("pooled: fit", fit_pooled(model, pooled_rows, validation, seed))
            pooled = with_training_noise(pooled, pooled_rows)
            methods["pooled"] = stage("pooled", query_results(model, share, tasks_per_batch,
                                                              lambda chunk: for_tasks(pooled, chunk.num_tasks)))
            settings["pooled"] = f"{_count(pooled_steps, 'step')} at rate {pooled_rate:g} on every training row"
        if grouped_rows is not None:
            classical, classical_settings = stage("classical", classical_baselines(model.graph, grouped_rows, share,
                                                                                   validation))
            methods |= {key: MethodResult(**scores) for key, scores in classical.items()}
            settings |= classical_settings
        if ablation is not None:
            methods["no_message_passing"] = stage("ablation", query_results(
                ablation, share, tasks_per_batch, lambda chunk: ablation.adapt(chunk, steps=adapt_steps)))
        for key, peer in (peers or {}).items():
            methods[key] = stage(key, peer(share))
    methods = {key: MethodResult(*(group.gather_tasks(getattr(result, name), tasks.num_tasks)
                                   for name in ("loss", "accuracy", "mse", "nll")))
               for key, result in methods.items()}
    return EvaluationReport(name, split, tasks.shots, adapt_steps, list(model.graph.names), methods, settings)


def scratch_baseline(model: GraphMetaLearner, tasks: TaskBatch, validation: TaskBatch, tasks_per_batch: int,
                     seed: int, steps: int | None = None, rate: float | None = None,
                     cache: Path | None = None) -> dict[str, Any]:
    """The from-scratch baseline on ``tasks``: ``{"steps", "rate"}`` (:func:`choose_scratch_settings`
    where not given) and its ``loss``, ``accuracy`` and ``mse`` ``[T, N]`` (no NLL: module docstring);
    read from, or kept in, the :mod:`.baseline_cache` folder ``cache``. It depends on the model's
    graph and device alone."""
    device = next(model.parameters()).device

    def compute() -> dict[str, Any]:
        chosen_steps, chosen_rate = choose_scratch_settings(model, validation, seed, steps, rate)
        result = query_results(model, tasks, tasks_per_batch,
                               lambda chunk: fit_fresh(model, chunk, chosen_steps, chosen_rate, seed))
        return {"steps": chosen_steps, "rate": chosen_rate, "loss": result.loss, "accuracy": result.accuracy,
                "mse": result.mse}

    key = digest("from_scratch", "squared-error loss", tasks, validation, tasks_per_batch, seed, steps, rate, SCRATCH_RATES,
                 SCRATCH_STEPS, str(device), torch.__version__)
    return cached(cache, key, compute, required=("mse",))


def choose_scratch_settings(model: GraphMetaLearner, validation: TaskBatch, seed: int, steps: int | None = None,
                            rate: float | None = None) -> tuple[int, float]:
    """``(steps, rate)`` of fresh learners trained on each task's support set alone
    (:meth:`~graphmeta.GraphMetaLearner.scratch_fits`) with the lowest query loss on the
    ``validation`` tasks, among ``SCRATCH_STEPS`` x ``SCRATCH_RATES`` (one training run per rate,
    scored at each step count and stopped once a score is worse than the one before, as early
    stopping would); a given ``steps`` or ``rate`` is kept, the other chosen."""
    step_counts = SCRATCH_STEPS if steps is None else (steps,)
    rates = SCRATCH_RATES if rate is None else (rate,)
    if len(step_counts) * len(rates) == 1 or step_counts == (0,):  # nothing to choose: no step, no rate to pick
        return step_counts[0], rates[0]
    scores: dict[tuple[int, float], float] = {}
    for candidate in rates:
        previous = math.inf
        for count, fitted in model.scratch_fits(validation.support, candidate, step_counts, seed):
            scores[count, candidate] = score = _query_loss(model, validation, fitted)
            if score > previous:  # overfitting K examples from here on: the later step counts would score worse still
                break
            previous = score
    return min(scores, key=scores.__getitem__)


def fit_fresh(model: GraphMetaLearner, support: TaskBatch, steps: int, rate: float, seed: int) -> AdaptedGraph:
    """Fresh learners trained on the support sets of ``support`` alone for ``steps`` Adam steps at ``rate``."""
    return model.fit_from_scratch(support.support, steps, rate, seed)


def fit_pooled(model: GraphMetaLearner, rows: Split, validation: TaskBatch, seed: int) -> tuple[AdaptedGraph, int, float]:
    """The pooled baseline: fresh learners of ``model``'s graph trained with Adam on ``rows`` (one
    task holding every training row), each step on ``POOLED_BATCH_ROWS`` of them, at each of
    ``POOLED_RATES``; scored every ``POOLED_CHECK_EVERY`` steps by the ``validation`` tasks' query
    loss without adaptation, until ``POOLED_PATIENCE`` scores in a row bring no new best or
    ``POOLED_MAX_STEPS``. Returns the best (one-task weights, steps, rate)."""
    best: tuple[float, AdaptedGraph | None, int, float] = (math.inf, None, 0, 0.0)
    for rate in POOLED_RATES:
        stale = 0
        checkpoints = range(POOLED_CHECK_EVERY, POOLED_MAX_STEPS + 1, POOLED_CHECK_EVERY)
        for steps, pooled in model.scratch_fits(rows, rate, checkpoints, seed, POOLED_BATCH_ROWS):
            loss = _query_loss(model, validation, for_tasks(pooled, validation.num_tasks))
            if loss < best[0] or best[1] is None:
                best, stale = (loss, pooled, steps, rate), 0
            else:
                stale += 1
                if stale >= POOLED_PATIENCE:
                    break
    return best[1], best[2], best[3]


def with_training_noise(pooled: AdaptedGraph, rows: Split) -> AdaptedGraph:
    """The pooled model (one task's weights) predicting with the noise of its training ``rows``:
    each learned noise scale set to the root mean squared residual of its output over the rows
    where the node counts, the maximum-likelihood Gaussian noise (rows taken ``POOLED_BATCH_ROWS``
    at a time); left as it was where it has no residual."""
    banks = copy.deepcopy(pooled.banks)
    reference = next(iter(pooled.fast[0].values()))
    rows = rows.to(device=reference.device, dtype=reference.dtype)
    with torch.no_grad():
        for bank, weights in zip(banks, pooled.fast):
            if bank.log_noise_std is None:
                continue
            squares, counts = 0.0, 0.0
            for start in range(0, rows.shots, POOLED_BATCH_ROWS):
                chunk = Split(*(tensor[:, start:start + POOLED_BATCH_ROWS]
                                for tensor in (rows.features, rows.values, rows.observed)))
                counting = bank.example_mask(chunk).to(reference.dtype)[..., None]
                squares = squares + ((bank(weights, chunk) - bank.targets(chunk)) ** 2 * counting).sum(-2)
                counts = counts + counting.sum(-2)
            variance = (squares / counts.clamp(min=1))[0]
            bank.log_noise_std.copy_(torch.where(variance > 0, 0.5 * variance.log(), bank.log_noise_std))
    return AdaptedGraph(pooled.graph, banks, pooled.fast)


def for_tasks(adapted: AdaptedGraph, num_tasks: int) -> AdaptedGraph:
    """One task's weights shared by ``num_tasks`` tasks (a view, no copy)."""
    return AdaptedGraph(adapted.graph, adapted.banks, [{name: w.expand(num_tasks, *w.shape[1:])
                                                         for name, w in weights.items()} for weights in adapted.fast])


def _query_loss(model: GraphMetaLearner, tasks: TaskBatch, adapted: AdaptedGraph) -> float:
    """The mean query loss of ``adapted`` on ``tasks`` (infinite when undefined, so never the best)."""
    loss = query_results(model, tasks, tasks.num_tasks, lambda chunk: adapted).total_loss().mean
    return loss if math.isfinite(loss) else math.inf


def query_results(model: GraphMetaLearner, tasks: TaskBatch, tasks_per_batch: int,
                  adapt: Callable[[TaskBatch], AdaptedGraph], own_loss: bool = False) -> MethodResult:
    """The query results of ``adapt(support)``, taken ``tasks_per_batch`` tasks at a time, scored on
    the query rows where the node and every value its input reads are observed (``fill_missing=False``):
    the rows the classical methods, which need complete rows, are scored on too. A regression node's
    ``loss`` is its squared error (a Linear node's own loss, its NLL, is in ``nll``), as the classical
    methods' is; with ``own_loss`` every node's ``loss`` is its learner's own, the one meta-training
    minimises, on which a run validates (so its training and validation curves share a scale)."""
    names = ("loss", "accuracy", "mse", "nll")
    results: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    for chunk in _chunks(tasks, tasks_per_batch):
        query = dataclasses.replace(chunk.query, fill_missing=False)
        metrics = adapt(chunk).evaluate(query)
        if not own_loss:  # one scale for every method: a regression node's squared error, whatever its learner's
            metrics["loss"] = torch.where(metrics["mse"].isnan(), metrics["loss"], metrics["mse"])
        present = model.banks.example_mask(query.to(metrics["loss"].device)).any(-1)
        nan = torch.full_like(metrics["loss"], math.nan)
        for name in names:
            results[name].append(torch.where(present, metrics[name], nan).cpu())
    return MethodResult(*(torch.cat(results[name]) for name in names))


def _chunks(tasks: TaskBatch, size: int) -> Iterator[TaskBatch]:
    for start in range(0, tasks.num_tasks, size):
        yield tasks.select(range(start, min(start + size, tasks.num_tasks)))


def nanmean(values: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """``nanmean`` that is NaN (not a warning) where a row is all NaN."""
    dims = () if dim is None else (dim,)
    count = (~values.isnan()).sum(dims)
    total = torch.nan_to_num(values).sum(dims)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, math.nan))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _format(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
