"""`AdaptedGraph`: a graph meta-learner's nodes after adaptation to T tasks' support sets."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch

from .data import Split, TaskBatch, dense_graphs
from .errors import DataError
from .learners.banks.bank import Weights
from .learners.banks.bank_set import value_columns_of
from .learners.banks.low_rank import LowRankWeight
from .taskgraph import ColumnLayout

if TYPE_CHECKING:
    from .learners.banks.bank_set import BankSet
    from .taskgraph import TaskGraph


class AdaptedGraph:
    """Adapted fast weights ``[T, N_b, ...]`` per bank, with the verbs to use them.

    ``predict`` runs the graph level by level (one batched call per bank and level), so a
    node whose parents are not observed gets its parents' predictions: regression outputs,
    or class probabilities in place of a one-hot value.
    """

    def __init__(self, graph: TaskGraph, banks: BankSet, fast: list[Weights]) -> None:
        self.graph = graph
        self.fast = fast
        self.banks = banks
        self.layout = ColumnLayout(self.graph)

    @property
    def num_tasks(self) -> int:
        return self._any_weight.shape[0]

    @property
    def _any_weight(self) -> torch.Tensor | LowRankWeight:
        return next(iter(self.fast[0].values()))

    def __repr__(self) -> str:
        return f"AdaptedGraph({self.num_tasks} tasks, {self.graph!r})"

    def evaluate(self, query: TaskBatch | Split) -> dict[str, torch.Tensor]:
        """Per (task, node) query results ``[T, N]``, with observed parents teacher-forced:

        * ``loss``: the node's loss (squared error, cross-entropy, or its learner's own: a Linear
          node's predictive negative log-likelihood);
        * ``accuracy``: the fraction classified right (NaN for regression nodes);
        * ``mse``: of a regression node, the squared error averaged over its outputs;
        * ``nll``: of a regression node, the negative log-likelihood of its predictive distribution
          per row, summed over its outputs: Gaussian with the learned noise scale (MLP, GNN),
          Student-t posterior predictive (Linear, where it is the loss); NaN where the node's
          learner has no predictive variance.

        ``mse`` and ``nll`` are NaN for classification nodes, whose ``loss`` is already the negative
        log-likelihood of their predicted class probabilities. Every mean is over the rows where
        the node and its observed parents are observed (0 where there is none), or, where a parent's
        value is missing in a row and ``query.fill_missing`` allows (by default), wherever the node is
        observed, the missing value predicted through that parent (:class:`~graphmeta.data.Split`); a
        latent node is not scored: NaN throughout."""
        split = query.query if isinstance(query, TaskBatch) else query
        split = self._on_device(split)
        self._check_tasks(split.num_tasks)
        with torch.no_grad():
            loss, accuracy = self.banks.losses(self.fast, split, accuracy=True)
            mse, nll = self.banks.regression_scores(self.fast, split)
        assert accuracy is not None  # asked for
        scores = {"loss": loss, "accuracy": accuracy, "mse": mse, "nll": nll}
        latent = torch.tensor([not self.graph.subtask(name).observed for name in self.graph.names],
                              device=loss.device)
        return {key: value.masked_fill(latent, float("nan")) for key, value in scores.items()}

    def predict(self, inputs: Mapping[str, Any] | None = None, observed: Mapping[str, Any] | None = None,
                shots: int | None = None) -> dict[str, torch.Tensor]:
        """Predict every node.

        ``inputs``: ``{node: x}`` own features ``[T, K, in_dim]`` (``[K, in_dim]`` for one
        adapted task; a list of PyG ``Data`` for GNN nodes). ``observed``: ``{node: y}`` known
        values, used for their children instead of predictions (labels for classification); a
        missing cell (NaN, or a label below 0) is predicted there, like an unobserved node.
        ``shots``: K, needed only when no node has inputs or observations.
        Returns ``{node: [T, K, out_dim]}`` regression outputs or ``[T, K, num_classes]``
        class probabilities (without the T axis for one task).
        """
        inputs, observed = dict(inputs or {}), dict(observed or {})
        for name in [*inputs, *observed]:
            self.graph.subtask(name)
        split, single = self._prediction_split(inputs, observed, shots)
        values, predicted = split.values, torch.zeros_like(split.values)
        with torch.no_grad():
            for level in self._level_plans:
                for bank_index, rows, output_columns, value_columns in level:
                    bank = self.banks[bank_index]
                    rows, output_columns, value_columns = (t.to(values.device) for t in
                                                           (rows, output_columns, value_columns))
                    current = Split(split.features, values, split.observed, split.graphs)
                    outputs = bank.predicted_values(bank(self.fast[bank_index], current, rows), rows)  # [T, R, K, D]
                    level_values = value_columns_of(outputs, output_columns)
                    predicted = predicted.index_copy(-1, value_columns, level_values)
                    values = values.index_copy(-1, value_columns,
                                               self.banks.observed_kept(split, values, value_columns, level_values))
        predictions = {name: predicted[..., self.layout.value_slices[name]] for name in self.graph.names}
        return {name: (value[0] if single else value) for name, value in predictions.items()}

    @cached_property
    def _level_plans(self) -> list[list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]]:
        """Per topological level, per bank with nodes there: ``(bank, rows, output columns,
        value columns)``, so one level's predictions land in ``values`` with one gather."""
        return self.banks.level_plans(self.graph)

    def _prediction_split(self, inputs: dict[str, Any], observed: dict[str, Any], shots: int | None
                          ) -> tuple[Split, bool]:
        parameter = self._any_weight
        dtype, device = parameter.dtype, parameter.device
        num_tasks = self.num_tasks
        single = None
        for name, x in [*inputs.items(), *observed.items()]:
            if self.graph.subtask(name).takes_graphs and name in inputs:
                continue
            tensor = torch.as_tensor(x)
            full = 3 if (name in inputs or self.graph.subtask(name).kind == "regression") else 2
            single = tensor.dim() == full - 1 if single is None else single
            shots = tensor.shape[0 if single else 1]
        if shots is None:
            raise DataError("predict needs inputs, observed values or shots= to know how many examples to predict")
        single = bool(single) or (single is None and num_tasks == 1)
        rows = {name: (inputs.get(name), observed.get(name)) for name in self.graph.names}
        features = torch.zeros(num_tasks, shots, self.layout.feature_width, dtype=dtype, device=device)
        values = torch.zeros(num_tasks, shots, self.layout.value_width, dtype=dtype, device=device)
        mask = torch.zeros(num_tasks, shots, len(self.graph), dtype=torch.bool, device=device)
        graphs = {}
        for n, (name, (x, y)) in enumerate(rows.items()):
            spec = self.graph.subtask(name)
            if spec.takes_graphs:
                if x is None:
                    raise DataError(f"predict needs input graphs for GNN node {name!r}")
                graphs[name] = dense_graphs(f"input of node {name!r}", x, spec.in_dim, num_tasks, shots, dtype
                                            ).to(device)
            elif spec.in_dim > 0:
                if x is None:
                    raise DataError(f"predict needs inputs for node {name!r} (in_dim={spec.in_dim})")
                x = torch.as_tensor(x, dtype=dtype, device=device)
                x = x.unsqueeze(0) if single else x
                if tuple(x.shape) != (num_tasks, shots, spec.in_dim):
                    raise DataError(f"inputs of node {name!r} have shape {tuple(x.shape)}, "
                                    f"expected {(num_tasks, shots, spec.in_dim)} (tasks, shots, in_dim)")
                features[..., self.layout.feature_slices[name]] = x
            if y is not None:  # a missing cell (NaN, or a class below 0) is predicted like an unobserved node
                y = torch.as_tensor(y, device=device)
                y = y.unsqueeze(0) if single else y
                if spec.num_classes is not None:  # a classification node
                    present = y >= 0
                    y = torch.nn.functional.one_hot(y.long().clamp(min=0), spec.num_classes)
                else:
                    present = ~torch.isnan(y).any(-1)
                values[..., self.layout.value_slices[name]] = torch.where(present[..., None], y, 0).to(dtype)
                mask[..., n] = present
        return Split(features, values, mask, graphs), single

    def _check_tasks(self, num_tasks: int) -> None:
        if num_tasks != self.num_tasks:
            raise DataError(f"these weights were adapted to {self.num_tasks} tasks, but the data have {num_tasks}")

    def _on_device(self, split: Split) -> Split:
        parameter = self._any_weight
        return split.to(device=parameter.device, dtype=parameter.dtype)
