r"""`MonolithicFamily`: a family's tasks without their decomposition, for the monolithic baseline.

A graph with latent subtasks claims that its structure helps. The learner to beat is the one a user
would write without the graph: one MLP from everything the graph's sinks can read, every node's own
features :math:`x` and the values :math:`v_o` of the observed nodes that have children (which the
graph reads teacher-forced too), to the values of the observed sinks :math:`y_s`,

.. math::
    [\hat y_{s_1}, \dots, \hat y_{s_S}] = f([x_1, \dots, x_N, v_{o_1}, \dots, v_{o_M}];\ \phi),

meta-trained with the same algorithm and budget. This family hands out the wrapped family's tasks
in that form: one regression subtask ``outputs`` whose value is the sinks' columns, observed in the
rows where every sink is. A row's inputs are the wrapped row's own (a missing input value reads 0).
:meth:`MonolithicFamily.scores` scores an adapted monolithic learner per sink, in the wrapped
graph's node order, as :meth:`~graphmeta.AdaptedGraph.evaluate` scores a graph: the squared error
averaged over a sink's outputs, and the Gaussian negative log-likelihood of its learned noise scale
summed over them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..data import Split, TaskBatch
from ..errors import ConfigError
from ..taskgraph import ColumnLayout, TaskGraph

if TYPE_CHECKING:
    from ..adapted_graph import AdaptedGraph
    from .base import TaskFamily

#: The name of the monolithic learner's one subtask.
OUTPUTS = "outputs"


class MonolithicFamily:
    """The tasks of ``family`` (any object with ``graph``, ``sample`` and ``fixed_tasks``, a
    :class:`TaskFamily` or a table) as the monolithic learner sees them (module docstring).

    Its graph must have latent subtasks (else the graph itself is the monolithic learner's peer) and
    regression sinks only; otherwise a :class:`~graphmeta.ConfigError` says why.
    """

    card: Any = None

    def __init__(self, family: TaskFamily) -> None:
        graph = family.graph
        reason = unsupported(graph)
        if reason is not None:
            raise ConfigError(f"no monolithic baseline for task graph {graph.name or '(unnamed)'!r}: {reason}")
        self.family = family
        layout = ColumnLayout(graph)
        self.sinks = observed_sinks(graph)
        read = [name for name in graph.names if graph.subtask(name).observed and graph.children(name)]
        self.input_columns = _columns(layout, read)
        self.output_columns = _columns(layout, self.sinks)
        self.sink_index = torch.tensor([graph.names.index(name) for name in self.sinks])
        self.num_nodes = len(graph)
        #: ``[W, S]``: which sink each output column belongs to.
        owners = torch.tensor([s for s, name in enumerate(self.sinks) for _ in range(graph.subtask(name).width)])
        self.sink_columns = torch.nn.functional.one_hot(owners, len(self.sinks)).double()
        self.graph = TaskGraph(f"{graph.name or 'graph'}-monolithic").add_subtask(
            OUTPUTS, in_dim=layout.feature_width + len(self.input_columns), out_dim=len(self.output_columns))

    @property
    def config(self) -> dict[str, Any]:
        """The wrapped family's arguments: this one adds none."""
        return dict(getattr(self.family, "config", None) or {})

    def fixed_tasks(self, split: str) -> tuple[int, int] | None:
        return self.family.fixed_tasks(split)

    def sample(self, num_tasks: int, shots: int | Sequence[int], query: int, split: str = "train",
               seed: int | None = None) -> TaskBatch:
        """The wrapped family's ``sample(...)``, as :meth:`repacked` gives it."""
        return self.repacked(self.family.sample(num_tasks, shots, query, split, seed))

    def repacked(self, batch: TaskBatch) -> TaskBatch:
        """A batch of the wrapped graph as the monolithic learner reads it (module docstring)."""
        return TaskBatch(self.graph, self._split(batch.support), self._split(batch.query))

    def _split(self, split: Split) -> Split:
        device = split.values.device
        inputs = split.values.index_select(-1, self.input_columns.to(device))
        features = torch.cat([split.features, inputs], dim=-1)
        values = split.values.index_select(-1, self.output_columns.to(device))
        observed = split.observed.index_select(-1, self.sink_index.to(device)).all(-1, keepdim=True)
        return Split(features, values, observed)

    def scores(self, adapted: AdaptedGraph, batch: TaskBatch) -> dict[str, torch.Tensor]:
        """Per (task, node of the wrapped graph) ``[T, N]`` ``loss`` (= ``mse``), ``mse``, ``nll`` and
        ``accuracy`` of the adapted monolithic learner on the query of ``batch`` (repacked, of
        :meth:`repacked`), NaN at the nodes that are not sinks and ``accuracy`` NaN throughout."""
        with torch.no_grad():
            return self._scores(adapted, batch.query)

    def _scores(self, adapted: AdaptedGraph, query: Split) -> dict[str, torch.Tensor]:
        outputs = adapted.predict({OUTPUTS: query.features}, shots=query.shots)[OUTPUTS]  # [T, K, W]
        targets = query.values.to(outputs.dtype)
        counting = query.observed[..., 0].to(outputs.dtype)  # [T, K]
        share = counting / counting.sum(-1, keepdim=True).clamp(min=1)  # each row's share of its task's mean
        membership = self.sink_columns.to(outputs)  # [W, S]

        def per_sink(per_column: torch.Tensor) -> torch.Tensor:
            """``[T, K, W]`` summed over each sink's columns and averaged over the counting rows: ``[T, S]``."""
            return torch.einsum("tk,tkw,ws->ts", share, per_column, membership)

        mse = per_sink((outputs - targets) ** 2) / membership.sum(0)
        bank = adapted.banks[0]
        nll = (per_sink(-bank.noise_model(outputs.unsqueeze(1)).log_prob(targets.unsqueeze(1)).squeeze(1))
               if bank.log_noise_std is not None else torch.full_like(mse, math.nan))
        present = counting.sum(-1, keepdim=True) > 0
        scores = {}
        for key, values in (("mse", mse), ("nll", nll)):
            by_node = torch.full((query.num_tasks, self.num_nodes), math.nan, dtype=outputs.dtype)
            by_node[:, self.sink_index] = torch.where(present, values, math.nan).cpu()
            scores[key] = by_node
        return {"loss": scores["mse"], **scores, "accuracy": torch.full_like(scores["mse"], math.nan)}


def unsupported(graph: TaskGraph) -> str | None:
    """Why ``graph`` has no monolithic baseline (module docstring), or ``None`` where it has one."""
    if not graph.latent:
        return "it has no latent subtask"
    classification = [name for name in observed_sinks(graph) if graph.subtask(name).kind != "regression"]
    if classification:
        return f"its sink(s) {', '.join(map(repr, classification))} are classification subtasks (one MLP regresses)"
    return None


def observed_sinks(graph: TaskGraph) -> list[str]:
    """The observed nodes without children: what the monolithic learner predicts."""
    return [name for name in graph.names if graph.subtask(name).observed and not graph.children(name)]


def _columns(layout: ColumnLayout, names: Sequence[str]) -> torch.Tensor:
    """The value columns of ``names``, in order."""
    return torch.tensor([c for name in names for c in range(layout.value_slices[name].start,
                                                             layout.value_slices[name].stop)], dtype=torch.long)
