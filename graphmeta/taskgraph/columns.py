"""`ColumnLayout`: where each node's features and value live in the packed example tensors
(the column layout of the data, not the drawing layout of :mod:`graphmeta.viz.layout`).

Every example (one row of one task) is stored as two flat vectors, in ``graph.names`` order:

* ``features``: the own features of every non-GNN node, concatenated (width ``F``);
* ``values``: the value of every node, concatenated (width ``W``): regression outputs as
  they are, classification labels one-hot.

A node's learner input is then one gather from ``[features | values | 0]``: its own feature
columns, then its parents' value columns, padded with the index of a constant-zero column up
to the widest input of its bank. Padded columns read 0, so they never contribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from .graph import TaskGraph


@dataclass(frozen=True)
class ColumnLayout:
    """Column offsets of every node in the packed ``features`` and ``values`` tensors."""

    graph: TaskGraph

    @cached_property
    def names(self) -> list[str]:
        return self.graph.names

    @cached_property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    @cached_property
    def feature_slices(self) -> dict[str, slice]:
        """Columns of each node's own features in ``features`` (GNN nodes keep theirs as graphs)."""
        return self._slices(lambda s: 0 if s.takes_graphs else s.in_dim)

    @cached_property
    def value_slices(self) -> dict[str, slice]:
        """Columns of each node's value in ``values``."""
        return self._slices(lambda s: s.width)

    @cached_property
    def feature_width(self) -> int:
        return sum(s.stop - s.start for s in self.feature_slices.values())

    @cached_property
    def value_width(self) -> int:
        return sum(s.stop - s.start for s in self.value_slices.values())

    def input_columns(self, name: str) -> list[int]:
        """Indices into ``[features | values]`` of node ``name``'s flat input (own features, then parents)."""
        own = list(range(self.feature_slices[name].start, self.feature_slices[name].stop))
        parents = [
            self.feature_width + column
            for parent in self.graph.parents(name)
            for column in range(self.value_slices[parent].start, self.value_slices[parent].stop)
        ]
        return own + parents

    def gather_index(self, names: list[str], columns_of, width: int, pad: int) -> torch.Tensor:
        """A ``[len(names), width]`` long tensor of ``columns_of(name)``, each padded with ``pad``."""
        rows = []
        for name in names:
            columns = columns_of(name)
            rows.append(columns + [pad] * (width - len(columns)))
        return torch.tensor(rows, dtype=torch.long).reshape(len(names), width)

    def _slices(self, width_of) -> dict[str, slice]:
        slices, start = {}, 0
        for name in self.names:
            width = width_of(self.graph.subtask(name))
            slices[name] = slice(start, start + width)
            start += width
        return slices
