"""Task graphs from pgmpy: bundled networks, user models, and structure learned from tables."""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import GraphError, closest

BUNDLED_DISCRETE = (
    "asia", "cancer", "earthquake", "sachs", "survey", "alarm", "barley", "child", "insurance",
    "mildew", "water", "hailfinder", "hepar2", "win95pts", "andes", "diabetes", "link", "munin1",
    "munin2", "munin3", "munin4", "pathfinder", "pigs", "munin",
)
BUNDLED_GAUSSIAN = ("ecoli70", "magic-niab", "magic-irri", "arth150")


def load_bundled(name: str) -> Any:
    """Load a network bundled with pgmpy by name, from the files inside the pgmpy wheel (offline)."""
    if name not in BUNDLED_DISCRETE + BUNDLED_GAUSSIAN:
        raise GraphError(
            f"unknown pgmpy network {name!r}{closest(name, BUNDLED_DISCRETE + BUNDLED_GAUSSIAN)}; "
            f"bundled: {', '.join(BUNDLED_DISCRETE + BUNDLED_GAUSSIAN)}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.utils import get_example_model

        return get_example_model(name)


def graph_from_pgmpy(cls: type, model: Any) -> Any:
    """See :meth:`graphmeta.TaskGraph.from_pgmpy`."""
    if isinstance(model, str):
        name, model = model, load_bundled(model)
    else:
        name = getattr(model, "name", "") or ""
    from pgmpy.models import DiscreteBayesianNetwork, LinearGaussianBayesianNetwork

    graph = cls(name=name if isinstance(name, str) else "")
    if isinstance(model, LinearGaussianBayesianNetwork):
        for variable in model.nodes():
            graph.add_subtask(variable)
    elif isinstance(model, DiscreteBayesianNetwork):
        for variable in model.nodes():
            states = _state_names(model, variable)
            graph.add_subtask(variable, kind="classification", num_classes=len(states), state_names=states)
    else:
        raise GraphError(
            f"from_pgmpy needs a DiscreteBayesianNetwork or LinearGaussianBayesianNetwork, got {type(model).__name__}"
        )
    for parent, child in model.edges():
        graph.add_dependency(parent, child)
    return graph.validate()


def _state_names(model: Any, variable: str) -> list[str]:
    cpd = model.get_cpds(variable) if model.cpds else None
    if cpd is not None and variable in cpd.state_names:
        states = list(cpd.state_names[variable])
    else:
        states = list(getattr(model, "states", {}).get(variable, []) or [])
    if len(states) < 2:
        raise GraphError(
            f"variable {variable!r} of the pgmpy network has no state names (or fewer than 2): "
            "add TabularCPDs with state_names to the model"
        )
    wrong = [s for s in states if not isinstance(s, str)]
    if wrong:
        raise GraphError(f"variable {variable!r} has non-string state names such as {wrong[0]!r}: pgmpy reads "
                         "table values as strings, so fit the network on df.astype(str)")
    return states


def learn_structure(cls: type, data: Any, method: str = "hill_climb", **kwargs: Any) -> Any:
    """Learn a task graph from a pandas DataFrame with pgmpy.

    ``method="hill_climb"`` runs :class:`pgmpy.estimators.HillClimbSearch` scored by BIC
    (``scoring_method="bic-d"`` for discrete, ``"bic-g"`` for continuous columns). BIC is
    consistent and penalises parameters by ``log(n)/2`` each, so on the small tables
    meta-learning users have it keeps decompositions sparse rather than fitting noise
    (BDeu's result depends strongly on its equivalent sample size). ``method="pc"`` runs the
    constraint-based PC algorithm instead. Extra keyword arguments go to pgmpy's ``estimate``.
    Object/categorical columns become classification subtasks, numeric ones regression.
    """
    import pandas as pd

    if not isinstance(data, pd.DataFrame) or data.empty:
        raise GraphError("from_data needs a non-empty pandas DataFrame (one column per variable)")
    discrete = [c for c in data.columns
                if not pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c])]
    if 0 < len(discrete) < len(data.columns):
        raise GraphError(f"from_data needs all columns discrete or all numeric; {discrete[0]!r} is discrete but "
                         f"{next(c for c in data.columns if c not in discrete)!r} is numeric")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.estimators import PC, HillClimbSearch

        if method == "hill_climb":
            kwargs.setdefault("scoring_method", "bic-d" if discrete else "bic-g")
            kwargs.setdefault("show_progress", False)
            dag = HillClimbSearch(data).estimate(**kwargs)
        elif method == "pc":
            kwargs.setdefault("show_progress", False)
            kwargs.setdefault("return_type", "dag")  # PC's own result is partly undirected
            kwargs.setdefault("n_jobs", 1)  # a process pool costs seconds on small tables
            dag = PC(data).estimate(**kwargs)
        else:
            raise GraphError(f"unknown structure-learning method {method!r}; choose 'hill_climb' or 'pc'")
    graph = cls(name="learned")
    for column in data.columns:
        if column in discrete:
            states = sorted(str(s) for s in data[column].dropna().unique())
            if len(states) < 2:
                raise GraphError(f"column {column!r} has fewer than 2 distinct values; drop it or add data")
            graph.add_subtask(str(column), kind="classification", num_classes=len(states), state_names=states)
        else:
            graph.add_subtask(str(column))
    for parent, child in dag.edges():
        graph.add_dependency(str(parent), str(child))
    return graph.validate()
