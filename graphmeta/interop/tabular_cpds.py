"""Discrete CPDs between pgmpy's ``TabularCPD`` and arrays, in a fixed state and parent order.

An array of a variable's CPD has ``TabularCPD``'s layout ``[card, configs]``: one column per
configuration of its parents in ``evidence`` order, the first parent varying slowest, every
axis in its variable's ``states`` order (see :mod:`graphmeta.interop.pgmpy` for both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import GraphError
from ..taskgraph import TaskGraph


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
