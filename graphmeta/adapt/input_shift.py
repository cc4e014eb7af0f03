r"""How far a task's support inputs lie from the inputs meta-training saw.

A node reads its own features and its parents' values (:meth:`ColumnLayout.input_columns`). For
every continuous input column ``j`` (a feature, or the value of a regression node), meta-training
keeps the number of rows ``n_j`` in which it was present, their mean ``mu_j`` and their sum of
squared deviations ``M_j``; a batch of ``n_B`` rows with mean ``mu_B`` and ``M_B`` merges in exactly
(Chan, Golub and LeVeque's parallel update), whatever the order of the batches:

.. math::
    \delta = \mu_B - \mu_j, \quad n' = n_j + n_B, \quad
    \mu' = \mu_j + \delta \, n_B / n', \quad M' = M_j + M_B + \delta^2 n_j n_B / n',

and ``sigma_j = sqrt(M_j / n_j)``, the spread of the column over all meta-training rows (the
spread between tasks included). The shift of node ``i`` in task ``t`` is

.. math::
    z_{ti} = \max_{j \in \mathrm{inputs}(i)} |\bar x_{tj} - \mu_j| / \sigma_j

with ``xbar_tj`` the mean of column ``j`` over the task's support rows: where the task sits, not
one odd row. Adapting where ``z > 4`` extrapolates: the inner learning rate was meta-trained for
inputs of the training scale, and a step on inputs ``z`` deviations out can overshoot (see
:mod:`.support_guard`). A column seen in fewer than :data:`MIN_ROWS` rows is not judged (an
untrained model has seen nothing), nor are classification values, which are one-hot codes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..data import Split
from ..errors import DistributionShiftWarning
from ..taskgraph import TaskGraph
from ..taskgraph.columns import ColumnLayout

#: How many training standard deviations away a task's inputs may lie before adaptation warns.
SHIFT_LIMIT = 4.0
#: Rows a column needs before its spread is trusted: at 30 the standard error of ``sigma`` is ~13%.
MIN_ROWS = 30


class InputStatistics(nn.Module):
    """The running mean and spread of every continuous input column meta-training saw (module
    docstring), as buffers, so they are saved with the model. A state without them (written
    before they existed) loads as nothing seen."""

    def __init__(self, graph: TaskGraph) -> None:
        super().__init__()
        layout = ColumnLayout(graph)
        regression_values = [layout.feature_width + column for name in graph.names
                              if graph.subtask(name).kind == "regression"
                              for column in range(layout.value_slices[name].start, layout.value_slices[name].stop)]
        columns = [*range(layout.feature_width), *regression_values]
        value_owner = {layout.feature_width + column: layout.index[name] for name in graph.names
                       for column in range(layout.value_slices[name].start, layout.value_slices[name].stop)}
        reads = torch.zeros(len(graph), len(columns), dtype=torch.bool)
        for i, name in enumerate(graph.names):
            own = set(layout.input_columns(name))
            reads[i] = torch.tensor([column in own for column in columns], dtype=torch.bool)
        self.names = list(graph.names)
        self.register_buffer("columns", torch.tensor(columns, dtype=torch.long), persistent=False)
        # which observed flag says a column is present: its node's for a value, "the row exists" (N) for a feature
        self.register_buffer("present_flag", torch.tensor([value_owner.get(c, len(graph)) for c in columns],
                                                          dtype=torch.long), persistent=False)
        self.register_buffer("reads", reads, persistent=False)
        for name in ("count", "mean", "squared_deviations"):
            self.register_buffer(name, torch.zeros(len(columns)))

    @torch.no_grad()
    def update(self, *splits: Split) -> None:
        """Merge the rows of ``splits`` (of the same tasks) into the statistics, as one batch."""
        x, present = self._columns(*(torch.cat([getattr(split, part) for split in splits], dim=1)
                                     for part in ("features", "values", "observed")))
        count = present.sum((0, 1))
        mean = x.sum((0, 1)) / count.clamp(min=1)
        centred = (x - mean) * present  # 0 where absent
        total = self.count + count
        delta = mean - self.mean
        share = count / total.clamp(min=1)  # 0 where nothing was seen
        self.squared_deviations += (centred * centred).sum((0, 1)) + delta * delta * self.count * share
        self.mean.addcmul_(delta, share)
        self.count.copy_(total)

    @torch.no_grad()
    def shift(self, split: Split) -> torch.Tensor:
        """``[T, N]``: the shift ``z`` of every (task, node) of ``split`` (0 where nothing is judged)."""
        x, present = self._columns(split.features, split.values, split.observed)
        rows = present.sum(1)
        task_mean = x.sum(1) / rows.clamp(min=1)
        spread = (self.squared_deviations / self.count.clamp(min=1)).sqrt()
        spread = spread.clamp(min=torch.finfo(spread.dtype).eps * (1 + self.mean.abs()))
        z = (task_mean - self.mean).abs() / spread
        z = torch.where((rows > 0) & (self.count >= MIN_ROWS), z, 0.0)
        if not len(self.columns):
            return z.new_zeros(split.num_tasks, len(self.names))
        return torch.where(self.reads, z[:, None, :], 0.0).amax(-1)

    def warn_if_shifted(self, split: Split, stacklevel: int = 2) -> None:
        """One :class:`~graphmeta.DistributionShiftWarning` naming every node and task of ``split``
        whose support inputs lie more than :data:`SHIFT_LIMIT` training standard deviations away."""
        z = self.shift(split)
        beyond = z > SHIFT_LIMIT
        if not bool(beyond.any()):
            return
        parts = []
        for i, name in enumerate(self.names):
            tasks = beyond[:, i].nonzero().flatten().tolist()
            if tasks:
                label = f"task {tasks[0]}" if len(tasks) == 1 else f"tasks {', '.join(map(str, tasks))}"
                parts.append(f"node {name!r} in {label} ({float(z[tasks, i].max()):.1f} sd)")
        warnings.warn(DistributionShiftWarning(
            f"support inputs lie beyond {SHIFT_LIMIT:g} training standard deviations of what meta-training saw: "
            f"{'; '.join(parts)}. Adaptation there extrapolates (each step is kept only where it lowers the "
            "support loss); check those inputs' units and scaling, or meta-train on tasks like them"),
            stacklevel=stacklevel + 1)

    def _columns(self, features: torch.Tensor, values: torch.Tensor, observed: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The judged columns ``[T, K, C]`` of a split's ``features``, ``values`` and ``observed``
        (0 where absent) and where they are present (1/0)."""
        values = torch.cat([features, values], dim=-1).index_select(-1, self.columns)
        flags = torch.cat([observed, observed.any(-1, keepdim=True)], dim=-1)
        present = flags.index_select(-1, self.present_flag)
        return torch.where(present, values, 0.0), present.to(values.dtype)

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        for name in ("count", "mean", "squared_deviations"):
            state_dict.setdefault(prefix + name, torch.zeros_like(getattr(self, name)))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def extra_repr(self) -> str:
        return f"columns={len(self.columns)}, rows_seen={int(self.count.max()) if len(self.count) else 0}"
