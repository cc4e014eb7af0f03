"""A task graph learned from a table with pgmpy's structure learning (:func:`taskgraph_from_data`).

pgmpy's searches iterate Python sets of variable names, whose order changes with
``PYTHONHASHSEED``; wherever two candidates tie (two equally good edges, two separating sets),
the graph learned would change from one run to the next. The searches here try their
candidates in the table's column order instead, so one table always gives one graph.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import GraphError
from ..taskgraph import TaskGraph


def taskgraph_from_data(data: Any, method: str = "hill_climb", **kwargs: Any) -> TaskGraph:
    """The task graph of the DAG pgmpy learns from a DataFrame, one subtask per column.

    ``method="hill_climb"`` runs :class:`pgmpy.estimators.HillClimbSearch` scored by BIC
    (``scoring_method="bic-d"`` for discrete, ``"bic-g"`` for continuous columns, ``"bic-cg"``,
    the conditional-Gaussian BIC, for a table that has both). BIC is
    consistent and penalises parameters by ``log(n)/2`` each, so on the small tables
    meta-learning users have it keeps decompositions sparse rather than fitting noise
    (BDeu's result depends strongly on its equivalent sample size). ``method="pc"`` runs the
    constraint-based PC algorithm instead. Extra keyword arguments go to pgmpy's ``estimate``.
    Object/categorical columns become classification subtasks (their sorted values, as
    strings, the state names), numeric ones regression.
    """
    import pandas as pd

    if not isinstance(data, pd.DataFrame) or data.empty:
        raise GraphError("taskgraph_from_data needs a non-empty pandas DataFrame (one column per variable)")
    discrete = [c for c in data.columns
                if not pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c])]
    subtasks = {}
    for column in data.columns:
        if column in discrete:
            states = sorted(str(s) for s in data[column].dropna().unique())
            if len(states) < 2:
                raise GraphError(f"column {column!r} has fewer than 2 distinct values; drop it or add data")
            subtasks[str(column)] = {"kind": "classification", "num_classes": len(states),
                                     "attrs": {"state_names": states}}
        else:
            subtasks[str(column)] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        hill_climb, pc = _column_ordered_searches()
        if method == "hill_climb":
            mixed = 0 < len(discrete) < len(data.columns)
            kwargs.setdefault("scoring_method", "bic-cg" if mixed else "bic-d" if discrete else "bic-g")
            kwargs.setdefault("show_progress", False)
            dag = hill_climb(data).estimate(**kwargs)
        elif method == "pc":
            kwargs.setdefault("show_progress", False)
            kwargs.setdefault("return_type", "dag")  # PC's own result is partly undirected
            kwargs.setdefault("n_jobs", 1)  # a process pool costs seconds on small tables
            dag = pc(data).estimate(**kwargs)
        else:
            raise GraphError(f"unknown structure-learning method {method!r}; choose 'hill_climb' or 'pc'")
    position = {column: i for i, column in enumerate(data.columns)}
    edges = sorted(dag.edges(), key=lambda edge: (position[edge[1]], position[edge[0]]))
    return TaskGraph.from_dict({"name": "learned", "subtasks": subtasks,
                                "dependencies": [[str(parent), str(child)] for parent, child in edges]})


@functools.cache
def _column_ordered_searches() -> tuple[type, type]:
    """pgmpy's ``HillClimbSearch`` and ``PC``, each trying its candidates in the table's column order.

    Hill climbing takes the first best of its candidate edge changes, and PC the first separating
    set its independence test accepts; pgmpy lists both from sets, so ties went by hash order.
    """
    from pgmpy.estimators import PC, HillClimbSearch

    class ColumnOrderedHillClimbSearch(HillClimbSearch):
        def _legal_operations(self, *args: Any, **kwargs: Any) -> Iterator[tuple[tuple[str, tuple[Any, Any]], float]]:
            rank = {variable: i for i, variable in enumerate(self.variables)}
            operations = super()._legal_operations(*args, **kwargs)
            return iter(sorted(operations, key=lambda op: (op[0][0], rank[op[0][1][0]], rank[op[0][1][1]])))

    class ColumnOrderedPC(PC):
        def _get_potential_sepsets(self, u: Any, v: Any, temporal_ordering: Any, graph: Any,
                                   lim_neighbors: int) -> list[tuple[Any, ...]]:
            rank = {variable: i for i, variable in enumerate(self.variables)}
            candidates = PC._get_potential_sepsets(u, v, temporal_ordering, graph, lim_neighbors)
            ordered = {tuple(sorted(candidate, key=rank.__getitem__)) for candidate in candidates}
            return sorted(ordered, key=lambda candidate: [rank[variable] for variable in candidate])

    return ColumnOrderedHillClimbSearch, ColumnOrderedPC
