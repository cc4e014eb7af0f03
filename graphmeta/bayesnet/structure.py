"""`NetworkStructure`: the DAG and states of a discrete Bayesian network, and its data as arrays.

Everything here is numpy over the padded CPD layout of :class:`~graphmeta.interop.cpd_table.CPDTable`:
variable ``n`` owns the columns ``offsets[n] ... offsets[n] + configs[n] - 1``, one per
configuration ``u`` of its parents (pgmpy's order, first evidence variable slowest), each of
width ``max cardinality``. A table of ``T`` tasks is ``[T, columns, width]``.

A data table (pandas, pgmpy's form: one column per variable, state names as values, NaN where
missing) becomes state indices ``[R, N]`` with ``-1`` for a missing value. Then

    config(r, n)  = sum_j s_{r, pa_j(n)} * stride_j(n)           (-1 if a parent is missing)
    n(u, v)       = #{rows r : config(r, n) = u, s_{r, n} = v}    (counts)
    log p(row r)  = sum_n log theta_n(s_{r, n} | config(r, n))   (complete rows)

each one gather or one ``bincount`` over all rows and variables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, GraphError, closest
from ..taskgraph import TaskGraph
from ..interop.cpd_table import CPDTable
from ..interop.pgmpy import discrete_graph_dict, network_evidence, read_network
from ..interop.tabular_cpds import cpd_values, discrete_network


@dataclass(frozen=True)
class NetworkStructure:
    """Variables (``names``, topological), their string ``states`` and ordered parents (``evidence``).

    Built with :meth:`from_pgmpy`; ``graph`` is the plain task graph (one classification
    subtask per variable) and ``table`` the CPD layout.
    """

    graph: TaskGraph
    states: dict[str, list[str]]
    evidence: dict[str, list[str]]

    @classmethod
    def from_pgmpy(cls, structure: Any, state_names: Mapping[str, Sequence[Any]] | None = None) -> NetworkStructure:
        """From a pgmpy ``DiscreteBayesianNetwork`` (or a bundled network's name).

        Only the DAG, the variables and their state names are used; CPD values are ignored.
        The graph is :meth:`TaskGraph.from_pgmpy`'s, so the states follow its rule (from
        ``state_names`` ``{variable: [state, ...]}``, else the CPDs; strings); each variable's
        parents are in its CPD's evidence order (:func:`~graphmeta.interop.pgmpy.network_evidence`).
        """
        from pgmpy.models import DiscreteBayesianNetwork

        _, model = read_network(structure)
        if not isinstance(model, DiscreteBayesianNetwork):
            raise GraphError(f"the structure must be a pgmpy DiscreteBayesianNetwork or a bundled network name, "
                             f"got {type(model).__name__}")
        graph = TaskGraph.from_pgmpy(structure, state_names)
        states = {name: list(graph.subtask(name).attrs["state_names"]) for name in graph.names}
        return cls(graph, states, network_evidence(model))

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` turns back into the structure."""
        return {"name": self.graph.name, "states": {v: list(s) for v, s in self.states.items()},
                "evidence": {v: list(p) for v, p in self.evidence.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkStructure:
        """Inverse of :meth:`to_dict`."""
        states = {v: list(s) for v, s in data["states"].items()}
        evidence = {v: list(p) for v, p in data["evidence"].items()}
        return cls(TaskGraph.from_dict(discrete_graph_dict(data.get("name") or "", states, evidence)), states, evidence)

    # ---------------------------------------------------------------- layout
    @property
    def names(self) -> list[str]:
        return self.graph.names

    @cached_property
    def table(self) -> CPDTable:
        return CPDTable.build(self.graph, self.evidence)

    # ------------------------------------------------------------------ data
    def encode(self, frames: pd.DataFrame | Sequence[pd.DataFrame], what: str = "table") -> np.ndarray:
        """State indices ``[T, R, N]`` (``graph.names`` order, ``-1`` missing) of ``T`` tables,
        shorter tables padded with missing rows; one DataFrame gives ``[R, N]``.

        A column that is no variable, a variable without a column, or a value that is not one
        of its variable's states is a :class:`DataError` naming it.
        """
        single = isinstance(frames, pd.DataFrame)
        frames = [frames] if single else list(frames)
        rows = max((len(frame) for frame in frames if isinstance(frame, pd.DataFrame)), default=0)
        codes = np.full((len(frames), rows, len(self.names)), -1, dtype=np.int64)
        for t, frame in enumerate(frames):
            where = what if single else f"{what} {t}"
            if not isinstance(frame, pd.DataFrame):
                raise DataError(f"{where} is a {type(frame).__name__}, expected a pandas DataFrame")
            for column in frame.columns:
                if column not in self.states:
                    raise DataError(f"{where} has the column {column!r}, which is no variable of the network"
                                    f"{closest(str(column), self.names)}")
            for n, name in enumerate(self.names):
                if name not in frame.columns:
                    raise DataError(f"{where} has no column for variable {name!r} (use NaN where it is unknown)")
                codes[t, : len(frame), n] = self._codes(frame[name], name, where)
        return codes[0] if single else codes

    def _codes(self, column: pd.Series, name: str, where: str) -> np.ndarray:
        present = column.notna().to_numpy()
        lookup = {state: float(i) for i, state in enumerate(self.states[name])}
        codes = column.astype(str).map(lookup).to_numpy(dtype=np.float64, na_value=np.nan)
        unknown = present & np.isnan(codes)
        if unknown.any():
            value = column.iloc[int(np.argmax(unknown))]
            raise DataError(f"{where}, column {name!r}: value {value!r} is not one of its states "
                            f"{self.states[name]}{closest(str(value), self.states[name])}")
        return np.where(present, np.nan_to_num(codes, nan=-1), -1).astype(np.int64)

    def configurations(self, codes: np.ndarray) -> np.ndarray:
        """``[..., N]`` parent-configuration index of every variable in every row, ``-1`` where a parent is missing."""
        table = self.table
        parents = codes[..., table.parents]  # [..., N, P]
        present = table.strides > 0
        index = (np.maximum(parents, 0) * table.strides).sum(-1)
        missing = ((parents < 0) & present).any(-1)
        return np.where(missing, -1, index)

    def counts(self, codes: np.ndarray) -> np.ndarray:
        """``[T, columns, width]`` counts ``n(u, v)`` of ``codes [T, R, N]``; a row counts for a
        variable when its value and all its parents' values are present."""
        table = self.table
        num_tasks = codes.shape[0]
        config = self.configurations(codes)
        usable = (config >= 0) & (codes >= 0)
        cell = ((np.arange(num_tasks)[:, None, None] * table.columns + table.offsets + config) * table.width + codes)
        flat = np.bincount(cell[usable], minlength=num_tasks * table.columns * table.width)
        return flat.reshape(num_tasks, table.columns, table.width).astype(np.float64)

    def log_likelihood(self, tables: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """``[T, R]`` log-likelihood of the complete rows ``codes [T, R, N]`` under ``tables [T, columns, width]``."""
        if (codes < 0).any():
            raise DataError("log_likelihood needs complete rows; these have missing values")
        table = self.table
        column = table.offsets + self.configurations(codes)  # [T, R, N]
        task = np.arange(codes.shape[0])[:, None, None]
        with np.errstate(divide="ignore"):
            return np.log(tables[task, column, codes]).sum(-1)

    # --------------------------------------------------------------- pgmpy CPDs
    def pack_network(self, model: Any) -> np.ndarray:
        """``[columns, width]``: the CPDs of a pgmpy network over these variables, in this layout
        (whatever the network's parent and state order)."""
        return self.table.pack({name: cpd_values(model, name, self.states, self.evidence[name]) for name in self.names})

    def to_network(self, tables: Mapping[str, np.ndarray]) -> Any:
        """A pgmpy ``DiscreteBayesianNetwork`` with one ``TabularCPD`` per variable from
        ``{variable: [card, configs]}`` (evidence and states in this structure's order)."""
        return discrete_network(self.graph, self.states, self.evidence, tables)
