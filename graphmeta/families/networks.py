"""The pgmpy network behind a network family (one bundled with pgmpy, by name, or the user's own),
and discrete CPDs between pgmpy's ``TabularCPD`` and arrays in a fixed state and parent order."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import GraphError
from ..graph import TaskGraph
from ..interop.pgmpy_bridge import load_bundled


def resolve_network(network: Any, model_type: type, family: str) -> tuple[str, Any]:
    """``(name, model)`` for a bundled network name or a pgmpy model of ``model_type``.

    Checks that every variable has a CPD. Bundled networks are parsed once per process and
    shared, read-only: families copy what they need out of them.
    """
    model = _bundled(network) if isinstance(network, str) else network
    if not isinstance(model, model_type):
        label = f"network {network!r}" if isinstance(network, str) else "the network"
        raise GraphError(f"the {family} family needs a pgmpy {model_type.__name__}, but {label} is a "
                         f"{type(model).__name__}")
    missing = [variable for variable in model.nodes() if model.get_cpds(variable) is None]
    if missing:
        raise GraphError(f"the network has no CPD for {', '.join(map(repr, missing))}: add them with "
                         "model.add_cpds(...) or fit the network on data (model.fit(df)) first")
    name = network if isinstance(network, str) else (getattr(model, "name", "") or "")
    return (name if isinstance(name, str) else ""), model


@functools.cache
def _bundled(name: str) -> Any:
    return load_bundled(name)


def cpd_values(model: Any, variable: str, states: Mapping[str, Sequence[str]], evidence: Sequence[str]) -> np.ndarray:
    """The CPD of ``variable`` in a pgmpy discrete network as ``[card, configs]`` (``TabularCPD`` layout).

    The parents are put in ``evidence`` order and every axis in its variable's ``states``
    order, whatever order the network's CPD uses; its state names are compared as strings.
    """
    cpd = model.get_cpds(variable)
    if cpd is None:
        raise GraphError(f"the network has no CPD for {variable!r}")
    variables = list(cpd.variables)
    if sorted(variables[1:], key=str) != sorted(evidence, key=str):
        raise GraphError(f"the CPD of {variable!r} is conditioned on {variables[1:]}, but its parents are "
                         f"{list(evidence)}")
    values = np.asarray(cpd.get_values(), dtype=np.float64).reshape(cpd.cardinality)
    order = [variable, *evidence]
    values = np.transpose(values, [variables.index(v) for v in order])
    for axis, name in enumerate(order):
        given = [str(s) for s in cpd.state_names[name]]
        if sorted(given) != sorted(states[name]):
            raise GraphError(f"the CPD of {variable!r} names the states of {name!r} {given}, "
                             f"expected {states[name]}")
        values = np.take(values, [given.index(s) for s in states[name]], axis=axis)
    return values.reshape(values.shape[0], -1)


def discrete_network(graph: TaskGraph, states: Mapping[str, Sequence[str]], evidence: Mapping[str, Sequence[str]],
                     tables: Mapping[str, np.ndarray]) -> Any:
    """A pgmpy ``DiscreteBayesianNetwork`` on ``graph`` with one ``TabularCPD`` per variable from
    ``tables`` ``{variable: [card, configs]}`` (parents in ``evidence`` order, axes in ``states`` order)."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork()
    model.add_nodes_from(graph.names)
    model.add_edges_from(graph.edges)
    for name in graph.names:
        parents = list(evidence[name])
        model.add_cpds(TabularCPD(
            name, len(states[name]), np.asarray(tables[name], dtype=np.float64), evidence=parents or None,
            evidence_card=[len(states[p]) for p in parents] or None,
            state_names={v: list(states[v]) for v in [name, *parents]},
        ))
    return model
