"""Evaluation against baselines: per-node and total query loss and accuracy over held-out tasks.

For every task ``t`` and node ``n`` with observed query examples, ``L[t, n]`` is the query
loss (parents teacher-forced) after a method has seen the support set, ``A[t, n]`` the
accuracy of classification nodes. A task's total is the mean over its nodes,
``L_t = mean_n L[t, n]`` (accuracy: over its classification nodes). Every number is reported
as ``mean ± h`` over tasks with the 95% Student-t interval

    h = t_{0.975, T - 1} * s / sqrt(T),     s the sample standard deviation over the T tasks.

A comparison with the adapted model is paired: ``d_t = L_t(method) - L_t(adapted)`` on the same
task, reported the same way; it is far tighter than the two intervals apart, since both
methods share each task's difficulty.

Methods: ``no_adaptation`` (the meta-learned initialisation, zero inner steps), ``adapted``
(the inner loop, and message passing when on), ``from_scratch`` (fresh learners trained on the
support set alone) and ``no_message_passing`` (the ablation: the same configuration
meta-trained with message passing off).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..adapted_graph import AdaptedGraph
from ..data import TaskBatch
from ..model import GraphMetaLearner

METHODS = {
    "no_adaptation": "no adaptation",
    "adapted": "after adaptation",
    "from_scratch": "trained from scratch",
    "no_message_passing": "ablation: no message passing",
}


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
    """Per (task, node) query ``loss`` and ``accuracy`` ``[T, N]`` of one method; NaN where undefined
    (no observed query example; accuracy of a regression node)."""

    loss: torch.Tensor
    accuracy: torch.Tensor

    def total_loss(self) -> Estimate:
        return Estimate.over_tasks(nanmean(self.loss, dim=1))

    def total_accuracy(self) -> Estimate:
        return Estimate.over_tasks(nanmean(self.accuracy, dim=1))

    def node_loss(self, node: int) -> Estimate:
        return Estimate.over_tasks(self.loss[:, node])

    def node_accuracy(self, node: int) -> Estimate:
        return Estimate.over_tasks(self.accuracy[:, node])


@dataclass(frozen=True)
class EvaluationReport:
    """The results of every method on the same ``num_tasks`` tasks of ``split``."""

    name: str
    split: str
    shots: int
    adapt_steps: int
    nodes: list[str]
    methods: dict[str, MethodResult]

    @property
    def num_tasks(self) -> int:
        return next(iter(self.methods.values())).loss.shape[0]

    @property
    def has_accuracy(self) -> bool:
        return any(not result.accuracy.isnan().all() for result in self.methods.values())

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
        """The row label of ``method`` in :meth:`table`; the adapted model's names its steps."""
        if method == "adapted":
            return f"{METHODS[method]} ({_count(self.adapt_steps, 'step')})"
        return METHODS[method]

    def to_dict(self) -> dict[str, Any]:
        methods = {}
        for key, result in self.methods.items():
            per_node = {}
            for n, node in enumerate(self.nodes):
                per_node[node] = {"loss": result.node_loss(n).to_dict()}
                if not result.accuracy[:, n].isnan().all():
                    per_node[node]["accuracy"] = result.node_accuracy(n).to_dict()
            methods[key] = {"label": METHODS[key], "loss": result.total_loss().to_dict(), "per_node": per_node}
            if key != "adapted":
                methods[key]["loss_minus_adapted"] = self.paired_difference(key).to_dict()
            if self.has_accuracy:
                methods[key]["accuracy"] = result.total_accuracy().to_dict()
        return {"name": self.name, "split": self.split, "num_tasks": self.num_tasks, "shots": self.shots,
                "adapt_steps": self.adapt_steps, "nodes": list(self.nodes), "methods": methods}

    def table(self, per_node: bool = False) -> str:
        """The totals as a text table (and the per-node losses with ``per_node``)."""
        header = ["method", "query loss", "loss - adapted (paired)"] + (["accuracy"] if self.has_accuracy else [])
        rows = []
        for key, result in self.methods.items():
            difference = "" if key == "adapted" else f"{self.paired_difference(key):+}"
            rows.append([self.label(key), str(result.total_loss()), difference]
                        + ([str(result.total_accuracy())] if self.has_accuracy else []))
        title = (f"{self.name}: {self.num_tasks} {self.split} tasks, {self.shots} shots, "
                 f"{_count(self.adapt_steps, 'adaptation step')} (mean ± 95% CI over tasks)")
        text = [title, _format(header, rows)]
        if per_node:
            header = ["node", *(self.label(key) for key in self.methods)]
            rows = [[node, *(str(result.node_loss(n)) for result in self.methods.values())]
                    for n, node in enumerate(self.nodes)]
            text += ["", "per-node query loss", _format(header, rows)]
        return "\n".join(text)


def evaluate_methods(model: GraphMetaLearner, tasks: TaskBatch, adapt_steps: int, scratch_steps: int,
                     scratch_lr: float, tasks_per_batch: int, seed: int, name: str, split: str,
                     ablation: GraphMetaLearner | None = None) -> EvaluationReport:
    """Evaluate ``model`` (and the ``ablation`` model, if given) and the from-scratch baseline on
    ``tasks``, both models in eval mode; ``name`` and ``split`` label the report."""
    for evaluated in (model, ablation):
        if evaluated is not None:
            evaluated.eval()
    methods = {
        "no_adaptation": query_results(model, tasks, tasks_per_batch, lambda chunk: model.adapt(chunk, steps=0)),
        "adapted": query_results(model, tasks, tasks_per_batch, lambda chunk: model.adapt(chunk, steps=adapt_steps)),
        "from_scratch": query_results(model, tasks, tasks_per_batch, lambda chunk: model.fit_from_scratch(
            chunk, steps=scratch_steps, lr=scratch_lr, seed=seed)),
    }
    if ablation is not None:
        methods["no_message_passing"] = query_results(ablation, tasks, tasks_per_batch,
                                                      lambda chunk: ablation.adapt(chunk, steps=adapt_steps))
    return EvaluationReport(name, split, tasks.shots, adapt_steps, list(model.graph.names), methods)


def query_results(model: GraphMetaLearner, tasks: TaskBatch, tasks_per_batch: int,
                  adapt: Callable[[TaskBatch], AdaptedGraph]) -> MethodResult:
    """The query results of ``adapt(support)``, taken ``tasks_per_batch`` tasks at a time."""
    losses, accuracies = [], []
    for chunk in _chunks(tasks, tasks_per_batch):
        metrics = adapt(chunk).evaluate(chunk)
        present = model.banks.example_mask(chunk.query.to(metrics["loss"].device)).any(-1)
        nan = torch.full_like(metrics["loss"], math.nan)
        losses.append(torch.where(present, metrics["loss"], nan).cpu())
        accuracies.append(torch.where(present, metrics["accuracy"], nan).cpu())
    return MethodResult(torch.cat(losses), torch.cat(accuracies))


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
