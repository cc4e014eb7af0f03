"""A task graph learned from a table with pgmpy's structure learning (``TaskGraph.from_data``).

Returns plain data (the dict of :meth:`TaskGraph.to_dict`) and never imports
:class:`~graphmeta.TaskGraph`, which builds itself from it.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import GraphError


def learned_graph_dict(data: Any, method: str = "hill_climb", **kwargs: Any) -> dict[str, Any]:
    """The task graph (as :meth:`TaskGraph.to_dict` data) of the DAG pgmpy learns from a DataFrame.

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
        raise GraphError("from_data needs a non-empty pandas DataFrame (one column per variable)")
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
        from pgmpy.estimators import PC, HillClimbSearch

        if method == "hill_climb":
            mixed = 0 < len(discrete) < len(data.columns)
            kwargs.setdefault("scoring_method", "bic-cg" if mixed else "bic-d" if discrete else "bic-g")
            kwargs.setdefault("show_progress", False)
            dag = HillClimbSearch(data).estimate(**kwargs)
        elif method == "pc":
            kwargs.setdefault("show_progress", False)
            kwargs.setdefault("return_type", "dag")  # PC's own result is partly undirected
            kwargs.setdefault("n_jobs", 1)  # a process pool costs seconds on small tables
            dag = PC(data).estimate(**kwargs)
        else:
            raise GraphError(f"unknown structure-learning method {method!r}; choose 'hill_climb' or 'pc'")
    return {"name": "learned", "subtasks": subtasks,
            "dependencies": [[str(parent), str(child)] for parent, child in dag.edges()]}
