"""pgmpy networks as task graphs: the bundled networks, and the one rule for state names and parent order.

A discrete network becomes one classification subtask per variable (``num_classes`` its
cardinality, its state names kept in ``attrs["state_names"]``), a linear-Gaussian network one
scalar regression subtask per variable; the edges are the network's. Every caller
(:func:`taskgraph_from_pgmpy`, the network families, :class:`~graphmeta.bayesnet.NetworkStructure`)
reads a network through :func:`taskgraph_from_pgmpy`, :func:`network_states` and :func:`network_evidence`.

State names are strings, because pgmpy reads a table's values back as strings: a variable's
states are the ones given in ``state_names`` (converted with ``str``), else its CPD's, else
those another CPD names for it (pgmpy's ``model.states``). A network's own state names must
already be strings, so that a network exported back names its states as the one read did.
Every variable needs at least 2 distinct states.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import GraphError, closest
from ..taskgraph import TaskGraph

BUNDLED_DISCRETE = (
    "asia", "cancer", "earthquake", "sachs", "survey", "alarm", "barley", "child", "insurance",
    "mildew", "water", "hailfinder", "hepar2", "win95pts", "andes", "diabetes", "link", "munin1",
    "munin2", "munin3", "munin4", "pathfinder", "pigs", "munin",
)
BUNDLED_GAUSSIAN = ("ecoli70", "magic-niab", "magic-irri", "arth150")


def load_bundled(name: str) -> Any:
    """A fresh copy of a network bundled with pgmpy, from the files inside the pgmpy wheel (offline)."""
    if name not in BUNDLED_DISCRETE + BUNDLED_GAUSSIAN:
        raise GraphError(
            f"unknown pgmpy network {name!r}{closest(name, BUNDLED_DISCRETE + BUNDLED_GAUSSIAN)}; "
            f"bundled: {', '.join(BUNDLED_DISCRETE + BUNDLED_GAUSSIAN)}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.utils import get_example_model

        return get_example_model(name)


@functools.cache
def _shared_bundled(name: str) -> Any:
    return load_bundled(name)


def read_network(network: Any) -> tuple[str, Any]:
    """``(name, model)`` of a bundled network's name or of a pgmpy model (named by its ``name``, if any).

    Bundled networks are parsed once per process and shared, read-only: callers copy what
    they need out of them (use :func:`load_bundled` for a copy of your own).
    """
    if isinstance(network, str):
        return network, _shared_bundled(network)
    name = getattr(network, "name", "") or ""
    return (name if isinstance(name, str) else ""), network


def resolve_network(network: Any, model_type: type[Any], family: str) -> tuple[str, Any]:
    """``(name, model)`` for a bundled network name or a pgmpy model of ``model_type``, every variable with a CPD.

    ``family`` names the caller in errors.
    """
    name, model = read_network(network)
    if not isinstance(model, model_type):
        label = f"network {network!r}" if isinstance(network, str) else "the network"
        raise GraphError(f"the {family} family needs a pgmpy {model_type.__name__}, but {label} is a "
                         f"{type(model).__name__}")
    missing = [variable for variable in model.nodes() if model.get_cpds(variable) is None]
    if missing:
        raise GraphError(f"the network has no CPD for {', '.join(map(repr, missing))}: add them with "
                         "model.add_cpds(...) or fit the network on data (model.fit(df)) first")
    return name, model


def network_states(model: Any, state_names: Mapping[str, Sequence[Any]] | None = None) -> dict[str, list[str]]:
    """``{variable: [state, ...]}`` of a pgmpy ``DiscreteBayesianNetwork``, by the rule of the module docstring.

    ``state_names`` names the states of variables without CPDs (or renames them).
    """
    given = dict(state_names or {})
    for variable in given:
        if variable not in model.nodes():
            raise GraphError(f"state_names names {variable!r}, which is no variable of the network"
                             f"{closest(str(variable), map(str, model.nodes()))}")
    known = model.states  # each variable's states as its own CPD, or any CPD conditioned on it, names them
    states = {}
    for variable in model.nodes():
        if variable in given:
            names = [str(state) for state in given[variable]]
        else:
            cpd = model.get_cpds(variable)
            names = list(cpd.state_names[variable] if cpd is not None else known.get(variable, []))
            if not names:
                raise GraphError(f"variable {variable!r} of the pgmpy network has no state names: add TabularCPDs "
                                 f"with state_names to the model, or give state_names={{{variable!r}: [...]}}")
            odd = [state for state in names if not isinstance(state, str)]
            if odd:
                raise GraphError(
                    f"variable {variable!r} has state names {names} that are not strings ({type(odd[0]).__name__}); "
                    "graphmeta exchanges pgmpy tables with string states: fit the network on df.astype(str), "
                    "or give the CPDs string state_names")
        if len(names) < 2 or len(set(names)) != len(names):
            raise GraphError(f"variable {variable!r} needs at least 2 distinct state names, got {names}")
        states[variable] = names
    return states


def network_evidence(model: Any) -> dict[str, list[str]]:
    """``{variable: [parent, ...]}``: each variable's parents in its CPD's evidence order (pgmpy's column
    order), or in the network's order where the variable has no CPD or its CPD is conditioned on others."""
    evidence = {}
    for variable in model.nodes():
        parents = list(model.get_parents(variable))
        cpd = model.get_cpds(variable)
        ordered = list(cpd.variables[1:]) if cpd is not None else []
        evidence[variable] = ordered if sorted(ordered, key=str) == sorted(parents, key=str) else parents
    return evidence


def discrete_graph_dict(name: str, states: Mapping[str, Sequence[str]],
                        evidence: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The task graph (as :meth:`TaskGraph.to_dict` data) of a discrete network with these variables
    (``states`` order), their states and their parents: one classification subtask per variable."""
    return {
        "name": name,
        "subtasks": {variable: {"kind": "classification", "num_classes": len(names),
                                "attrs": {"state_names": list(names)}} for variable, names in states.items()},
        "dependencies": [[parent, variable] for variable in states for parent in evidence[variable]],
    }


def taskgraph_from_pgmpy(network: Any, state_names: Mapping[str, Sequence[Any]] | None = None) -> TaskGraph:
    """One subtask per variable of a pgmpy Bayesian network, or of a bundled network by name.

    A ``DiscreteBayesianNetwork`` gives classification subtasks (``num_classes`` = the
    variable's cardinality, ``state_names`` kept in ``attrs``); a
    ``LinearGaussianBayesianNetwork`` gives scalar regression subtasks. Parents are the
    network's parents. A string (``"alarm"``, ``"asia"``, ``"child"``, ...) loads the
    network bundled with pgmpy, offline. ``state_names`` ``{variable: [state, ...]}`` names
    the states of variables without CPDs (by the rule of the module docstring).
    """
    from pgmpy.models import DiscreteBayesianNetwork, LinearGaussianBayesianNetwork

    name, model = read_network(network)
    if isinstance(model, DiscreteBayesianNetwork):
        states = network_states(model, state_names)
        return TaskGraph.from_dict(discrete_graph_dict(name, states, network_evidence(model)))
    if not isinstance(model, LinearGaussianBayesianNetwork):
        raise GraphError(f"taskgraph_from_pgmpy needs a DiscreteBayesianNetwork or LinearGaussianBayesianNetwork, "
                         f"got {type(model).__name__}")
    if state_names:
        raise GraphError("state_names apply to discrete networks; a LinearGaussianBayesianNetwork has none")
    return TaskGraph.from_dict({"name": name, "subtasks": {variable: {} for variable in model.nodes()},
                                "dependencies": [list(edge) for edge in model.edges()]})
