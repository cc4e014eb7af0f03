"""`CPDTable`: every CPD of a discrete Bayesian network in one padded array, for vectorised sampling
and counting; and the graph's parents and levels as index arrays that it (and the network families) gather with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..taskgraph import TaskGraph


def padded_parents(graph: TaskGraph, parents: Mapping[str, Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """``(index [N, P], present [N, P])``: each node's parents as indices into ``graph.names``.

    ``parents`` fixes the order of each node's parents (for example pgmpy's evidence order);
    rows are padded to the largest in-degree ``P`` with index 0 and ``present`` False.
    """
    position = {name: i for i, name in enumerate(graph.names)}
    width = max((len(parents[name]) for name in graph.names), default=0)
    index = np.zeros((len(graph), width), dtype=np.int64)
    present = np.zeros((len(graph), width), dtype=bool)
    for row, name in enumerate(graph.names):
        columns = [position[parent] for parent in parents[name]]
        index[row, : len(columns)] = columns
        present[row, : len(columns)] = True
    return index, present


def level_indices(graph: TaskGraph) -> list[np.ndarray]:
    """The topological levels of ``graph`` as index arrays into ``graph.names``, for ancestral sampling."""
    position = {name: i for i, name in enumerate(graph.names)}
    return [np.array([position[name] for name in level], dtype=np.int64) for level in graph.levels()]


@dataclass(frozen=True)
class CPDTable:
    r"""The layout of all CPD columns of a network over ``graph.names``.

    A *column* is one distribution :math:`P(v \mid u)` of variable ``v`` given one configuration
    ``u`` of its parents. Variable ``n`` owns the columns ``offsets[n] ... offsets[n] +
    configs[n] - 1`` in pgmpy's order: the configuration of evidence states
    :math:`(s_1, \dots, s_P)` (``evidence[v]`` order, as in ``TabularCPD``) is column
    :math:`\sum_j s_j \cdot \text{strides}_j` with the first evidence variable varying slowest.
    A packed table has shape ``[..., columns, width]``, each column padded with zeros to the
    widest cardinality, so one gather serves every variable of a topological level.
    """

    names: tuple[str, ...]
    cardinality: np.ndarray  # [N]
    offsets: np.ndarray  # [N]
    configs: np.ndarray  # [N]
    parents: np.ndarray  # [N, P] evidence indices into names, 0 past a variable's in-degree
    strides: np.ndarray  # [N, P] 0 past a variable's in-degree
    levels: tuple[np.ndarray, ...]

    @classmethod
    def build(cls, graph: TaskGraph, evidence: Mapping[str, Sequence[str]]) -> CPDTable:
        """The layout for classification ``graph`` whose variable ``v`` has parents ``evidence[v]`` (pgmpy order)."""
        names = graph.names
        cardinality = np.array([graph.subtask(name).num_classes for name in names], dtype=np.int64)
        parents, present = padded_parents(graph, evidence)
        parent_cards = np.where(present, cardinality[parents], 1)
        # stride_j = product of the cardinalities of the evidence after j (first evidence varies slowest)
        strides = np.flip(np.cumprod(np.flip(parent_cards, 1), 1), 1) // parent_cards * present
        configs = parent_cards.prod(1)
        offsets = np.concatenate([[0], np.cumsum(configs)[:-1]])
        return cls(tuple(names), cardinality, offsets, configs, parents, strides, tuple(level_indices(graph)))

    @property
    def columns(self) -> int:
        return int(self.configs.sum())

    @property
    def width(self) -> int:
        return int(self.cardinality.max())

    def pack(self, tables: Mapping[str, np.ndarray], fill: float = 0.0) -> np.ndarray:
        """``{variable: [..., card, configs]}`` (``TabularCPD.get_values()`` layout) -> ``[..., columns, width]``."""
        lead = np.shape(tables[self.names[0]])[:-2]
        packed = np.full((*lead, self.columns, self.width), fill, dtype=np.float64)
        for n, name in enumerate(self.names):
            columns = slice(self.offsets[n], self.offsets[n] + self.configs[n])
            packed[..., columns, : self.cardinality[n]] = np.swapaxes(tables[name], -1, -2)
        return packed

    def unpack(self, packed: np.ndarray) -> dict[str, np.ndarray]:
        """Inverse of :meth:`pack`: ``{variable: [..., card, configs]}``."""
        return {
            name: np.swapaxes(packed[..., self.offsets[n]: self.offsets[n] + self.configs[n], : self.cardinality[n]],
                              -1, -2).copy()
            for n, name in enumerate(self.names)
        }

    def padding(self) -> np.ndarray:
        """``[columns, width]`` bool: True where a column is padded past its variable's cardinality."""
        owner = np.repeat(np.arange(len(self.names)), self.configs)
        return np.arange(self.width)[None, :] >= self.cardinality[owner][:, None]

    def sample(self, theta: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
        """Ancestral sampling: ``rows`` joint draws per task from packed CPDs ``theta [T, columns, width]``.

        Level by level, every variable's column is gathered by its parents' configuration
        index and its state drawn by inverse CDF on one uniform, for all tasks, rows and
        variables of the level at once. Returns ``[T, rows, N]`` state indices.
        """
        num_tasks = theta.shape[0]
        cdf = np.cumsum(theta, axis=-1)[..., :-1].reshape(num_tasks * self.columns, self.width - 1)
        # node-major [N, T, rows]: a level's parents are gathered as whole contiguous blocks; loops over
        # parent slots and states (a handful each) beat reductions over tiny trailing axes
        uniform = rng.random((len(self.names), num_tasks, rows))
        states = np.zeros((len(self.names), num_tasks, rows), dtype=np.int64)
        task_offset = (np.arange(num_tasks) * self.columns)[None, :, None]
        for nodes in self.levels:
            # [L, T, rows] from the start: a level whose variables have no parents gathers per row too
            column = np.broadcast_to(task_offset + self.offsets[nodes, None, None], (len(nodes), num_tasks, rows))
            for slot in range(self.parents.shape[1]):
                column = column + states[self.parents[nodes, slot]] * self.strides[nodes, slot, None, None]
            below = cdf[column]  # [L, T, rows, width - 1]
            drawn = np.zeros(column.shape, dtype=np.int64)
            for state in range(self.width - 1):
                drawn += uniform[nodes] > below[..., state]
            # rounding can leave the cdf a hair under 1: never return a padded state
            states[nodes] = np.minimum(drawn, self.cardinality[nodes, None, None] - 1)
        return states.transpose(1, 2, 0)
