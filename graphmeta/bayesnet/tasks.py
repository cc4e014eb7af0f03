"""`TableTasks`: the tables of related networks as a task family, so the Trainer can meta-train on them.

Each task is one table (one site's records) of state indices. An episode of split ``s``
draws ``num_tasks`` of the split's tables and, in each, a random ``shots`` rows as the
support set and ``query`` further rows as the query set (fewer where a table is short; the
rest is padding, unobserved). The draw is a function of ``seed`` alone, so the Trainer's
fixed validation episode is the same at every validation.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..data import TaskBatch
from ..errors import ConfigError
from ..taskgraph import TaskGraph
from ..taskgraph import ColumnLayout
from .structure import NetworkStructure
from .tabular import split_from_codes


class TableTasks:
    """Episodes over ``tables {split: codes [T, R, N]}`` (``-1`` missing, see :meth:`NetworkStructure.encode`)
    for ``graph``, the :func:`~.tabular.tabular_graph` of ``structure``."""

    def __init__(self, structure: NetworkStructure, graph: TaskGraph, tables: Mapping[str, np.ndarray]) -> None:
        self.structure = structure
        self.graph = graph
        self.layout = ColumnLayout(graph)
        self.tables = dict(tables)
        self.empty_rows = {split: ~(codes >= 0).any(-1) for split, codes in self.tables.items()}
        self.config = {"network": structure.graph.name, **{f"{s}_tables": len(c) for s, c in self.tables.items()}}

    def sample(self, num_tasks: int, shots: int, query: int, split: str = "train",
               seed: int | None = None) -> TaskBatch:
        """``num_tasks`` episodes of ``split`` (tables drawn without replacement while they last)."""
        if split not in self.tables:
            raise ConfigError(f"no {split!r} tables: this family has {', '.join(map(repr, self.tables))}")
        codes, empty = self.tables[split], self.empty_rows[split]
        rng = np.random.default_rng(seed)
        count = len(codes)
        tasks = np.concatenate([rng.permutation(count) for _ in range(-(-num_tasks // count))])[:num_tasks]
        # a random order of each table's rows, rows without any value (padding) last; then support | query
        order = np.argsort(rng.random((num_tasks, codes.shape[1])) + empty[tasks], axis=1)
        picked = np.take_along_axis(codes[tasks], order[..., None], axis=1)
        episode = np.full((num_tasks, shots + query, codes.shape[2]), -1, dtype=np.int64)
        width = min(shots + query, picked.shape[1])
        episode[:, :width] = picked[:, :width]
        support, query_rows = episode[:, :shots], episode[:, shots:]
        return TaskBatch(self.graph, split_from_codes(self.structure, self.layout, support),
                         split_from_codes(self.structure, self.layout, query_rows))

    def __repr__(self) -> str:
        return "TableTasks(" + ", ".join(f"{key}={value!r}" for key, value in self.config.items()) + ")"
