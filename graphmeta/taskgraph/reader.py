"""The one graph reader: every form a task graph is given in, read into plain data.

A task graph comes as a file (``.yaml``, ``.yml``, ``.json``), a mapping in
:meth:`TaskGraph.to_dict` form, or a networkx ``DiGraph`` (pgmpy's models are ``DiGraph``
subclasses, so they are read here structurally, without importing pgmpy). Each becomes a
:class:`GraphStructure`: the name, the nodes in the order given, the ``(parent, child)``
edges in the order given, and each node's :class:`Subtask` keyword arguments as given.

:func:`require_acyclic` is the one cycle check: it names the cycles and a small set of edges
whose removal breaks them all. :class:`TaskGraph` (``from_dict``, ``load``, ``from_networkx``,
``validate``) and the table family both read graphs through this module.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from ..errors import GraphError, SpecError, check_keys, closest
from ..validation import load_yaml, parameters
from .subtask import Subtask

#: The keys of one subtask's spec (the keyword arguments of :meth:`TaskGraph.add_subtask`).
SUBTASK_KEYS = tuple(key for key in parameters(Subtask) if key != "name")
#: The keys of a task-graph file or mapping.
FILE_KEYS = ("name", "subtasks", "dependencies")
#: How many cycles a message shows, and how many the edge choice weighs at each step.
SHOWN_CYCLES, WEIGHED_CYCLES = 5, 100


@dataclass(frozen=True)
class GraphStructure:
    """A task graph as plain data: ``name``, ``nodes`` and ``(parent, child)`` ``edges`` in the
    order given, and ``specs`` ``{node: {subtask key: value}}`` (only the keys given)."""

    name: str
    nodes: list[str]
    edges: list[tuple[str, str]]
    specs: dict[str, dict[str, Any]]


def read_graph(source: Any, *, partial: bool = False) -> GraphStructure:
    """The structure of a task-graph file, mapping or networkx ``DiGraph`` (or pgmpy model).

    ``partial=True`` also accepts a mapping whose ``subtasks`` only list the nodes, or are left
    out where ``dependencies`` name every node (the table family's form: the table gives the
    rest); otherwise every dependency must join two listed subtasks.
    """
    if isinstance(source, (str, os.PathLike)):
        return read_mapping(read_graph_file(Path(source)), partial=partial)
    if isinstance(source, Mapping):
        return read_mapping(source, partial=partial)
    if isinstance(source, nx.DiGraph):
        return read_networkx(source)
    raise SpecError(f"cannot read a task graph from a {type(source).__name__}: give a task-graph file (.yaml, .yml, "
                    ".json), a mapping, a networkx DiGraph or a pgmpy model")


def read_graph_file(path: Path) -> Any:
    """The data of a ``.yaml``/``.yml`` or ``.json`` task-graph file; a key repeated in one mapping
    is an error (YAML and JSON readers would keep the last value without a word)."""
    if not path.is_file():
        raise GraphError(f"no task graph file at {path}")
    if path.suffix in (".yaml", ".yml"):
        return load_yaml(path, str(path), GraphError)
    if path.suffix == ".json":
        try:
            return json.loads(path.read_text(), object_pairs_hook=lambda pairs: _unique_keys(pairs, path))
        except json.JSONDecodeError as error:
            raise GraphError(f"{path} is not valid JSON: {error}") from None
    raise GraphError(f"unknown task graph file type {path.suffix!r}: use .yaml, .yml or .json")


def read_mapping(data: Any, *, partial: bool = False) -> GraphStructure:
    """The structure of a mapping in :meth:`TaskGraph.to_dict` form (see :func:`read_graph` for ``partial``).
    An unknown key is a :class:`~graphmeta.errors.SpecError` naming it and the closest valid one."""
    if not isinstance(data, Mapping):
        raise GraphError(f"a task graph file must hold a mapping, got {type(data).__name__}")
    check_keys(data, FILE_KEYS, "task graph", SpecError)
    subtasks = data.get("subtasks") or {}
    if partial and isinstance(subtasks, (list, tuple)):
        subtasks = dict.fromkeys(subtasks)
    if not isinstance(subtasks, Mapping):
        listed = " (or list the nodes)" if partial else ""
        raise GraphError(f"'subtasks' must map each subtask name to its spec{listed}, got {type(subtasks).__name__}")
    specs = {}
    for name, spec in subtasks.items():
        if spec is not None and not isinstance(spec, Mapping):
            raise GraphError(f"subtask {name!r}: the spec must be a mapping with keys among "
                             f"{', '.join(SUBTASK_KEYS)}, got {spec!r}")
        check_keys(spec or {}, SUBTASK_KEYS, f"subtask {name!r}", SpecError)
        specs[name] = dict(spec or {})
    edges = []
    for edge in data.get("dependencies") or []:
        if not isinstance(edge, (list, tuple)) or len(edge) != 2:
            raise GraphError(f"a dependency must be a [parent, child] pair, got {edge!r}")
        for node in edge:
            if not partial and node not in specs:
                raise GraphError(f"dependency {edge[0]!r} -> {edge[1]!r}: unknown subtask {node!r}"
                                 f"{closest(str(node), map(str, specs))}; list it under 'subtasks'")
        edges.append((edge[0], edge[1]))
    nodes = list(dict.fromkeys([*specs, *(node for edge in edges for node in edge)]))
    return GraphStructure(data.get("name") or "", nodes, edges, {node: specs.get(node, {}) for node in nodes})


def read_networkx(dag: nx.DiGraph) -> GraphStructure:
    """The structure of a networkx ``DiGraph``: node attributes named like :class:`Subtask` fields
    make its spec; the others are kept in its ``attrs`` (beside an ``attrs`` attribute's items)."""
    specs = {}
    for name, data in dag.nodes(data=True):
        spec = {key: value for key, value in data.items() if key in SUBTASK_KEYS and key != "attrs"}
        spec["attrs"] = {**(data.get("attrs") or {}), **{k: v for k, v in data.items() if k not in SUBTASK_KEYS}}
        specs[name] = spec
    return GraphStructure(dag.graph.get("name", ""), list(dag.nodes), list(dag.edges), specs)


def require_acyclic(nodes: list[Any], edges: list[tuple[Any, Any]]) -> None:
    """A :class:`GraphError` for a self-loop, or naming the cycles (up to five, each from its node
    given first) and edges whose removal breaks them all; nothing for a DAG."""
    for parent, child in edges:
        if parent == child:
            raise GraphError(f"self-loop on {parent!r}: a subtask cannot depend on itself; remove the edge "
                             f"{parent} -> {child}")
    nodes = list(dict.fromkeys([*nodes, *(node for edge in edges for node in edge)]))
    position = {node: i for i, node in enumerate(nodes)}
    dag = nx.DiGraph()
    # integer labels hash to themselves, so networkx's sets iterate alike under every PYTHONHASHSEED
    dag.add_nodes_from(range(len(nodes)))
    dag.add_edges_from((position[parent], position[child]) for parent, child in edges)
    if nx.is_directed_acyclic_graph(dag):
        return
    cycles = [_starting_at_first(cycle) for cycle in itertools.islice(nx.simple_cycles(dag), SHOWN_CYCLES)]
    shown = "; ".join(" -> ".join(str(nodes[i]) for i in [*cycle, cycle[0]]) for cycle in cycles)
    breaking = _edges_breaking_cycles(dag)
    listed = ", ".join(f"{nodes[u]} -> {nodes[v]}" for u, v in breaking)
    raise GraphError(f"the graph has {'a cycle' if len(cycles) == 1 else 'cycles'}: {shown}; a task graph must be a "
                     f"DAG. Removing {'the edge' if len(breaking) == 1 else 'the edges'} {listed} would break "
                     f"{'it' if len(cycles) == 1 else 'every cycle'} (so would any one edge of each cycle)")


def _starting_at_first(cycle: list[int]) -> list[int]:
    """``cycle`` rotated to start at its node given first, so a message reads in the user's order."""
    start = cycle.index(min(cycle))
    return cycle[start:] + cycle[:start]


def _edges_breaking_cycles(dag: nx.DiGraph) -> list[tuple[int, int]]:
    """A small set of edges whose removal leaves a DAG: greedily the edge on the most cycles
    (among the first hundred found), ties to the edge given last."""
    remaining, removed = dag.copy(), []
    order = {edge: i for i, edge in enumerate(dag.edges)}
    while not nx.is_directed_acyclic_graph(remaining):
        counts = Counter(edge for cycle in itertools.islice(nx.simple_cycles(remaining), WEIGHED_CYCLES)
                         for edge in zip(cycle, [*cycle[1:], cycle[0]]))
        edge = max(counts, key=lambda e: (counts[e], order[e]))
        remaining.remove_edge(*edge)
        removed.append(edge)
    return removed


def _unique_keys(pairs: list[tuple[str, Any]], path: Path) -> dict[str, Any]:
    """A JSON object, refusing a repeated key (``json`` would keep the last), as YAML files do."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise GraphError(f"{path}: duplicate key {key!r}; JSON would keep only the last value, so remove or "
                             "rename one")
        data[key] = value
    return data
