"""Comparing task graphs: a fingerprint of a decomposition, and the differences between two.

A checkpoint records the fingerprint and the graph of the model that wrote it, so a checkpoint
loaded into a model of another graph is refused with what differs (:mod:`graphmeta.train.checkpoint`),
and :meth:`~graphmeta.GraphMetaLearner.check_graph` names the differences of a batch's graph.
The graph's ``name`` is no part of either: the same decomposition under another name is the same graph.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def graph_fingerprint(graph: Mapping[str, Any]) -> str:
    """The SHA-256 of the decomposition ``graph`` (a :meth:`~graphmeta.TaskGraph.to_dict`):
    its subtasks' specs and its dependencies, in a canonical order, without its name."""
    canonical = {"subtasks": {name: graph["subtasks"][name] for name in sorted(graph["subtasks"])},
                 "dependencies": sorted(map(list, graph["dependencies"]))}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def graph_differences(ours: Mapping[str, Any], theirs: Mapping[str, Any], our_side: str,
                      their_side: str) -> list[str]:
    """What differs between the graphs ``ours`` and ``theirs`` (:meth:`~graphmeta.TaskGraph.to_dict`
    mappings), one phrase each: the nodes only one side has (sides named ``our_side`` and
    ``their_side``), the nodes with other specs, the edges only one side has. ``[]``: the same graph."""
    our_nodes, their_nodes = ours["subtasks"], theirs["subtasks"]
    our_edges = {tuple(edge) for edge in ours["dependencies"]}
    their_edges = {tuple(edge) for edge in theirs["dependencies"]}
    differences = [
        (f"nodes only in {their_side}", sorted(set(their_nodes) - set(our_nodes))),
        (f"nodes only in {our_side}", sorted(set(our_nodes) - set(their_nodes))),
        ("nodes with other specs", sorted(name for name in set(our_nodes) & set(their_nodes)
                                          if our_nodes[name] != their_nodes[name])),
        (f"edges only in {their_side}", sorted(their_edges - our_edges)),
        (f"edges only in {our_side}", sorted(our_edges - their_edges)),
    ]
    return [f"{what}: {items}" for what, items in differences if items]
