"""`TaskGraph`: the decomposition of a task into subtasks and their dependencies.

A task graph is a DAG. An edge ``parent -> child`` means the child's input is its own
features concatenated with the parent's value. The graph is built with chaining calls::

    graph = (TaskGraph()
             .add_subtask("weather", in_dim=4, kind="classification", num_classes=3)
             .add_subtask("traffic", in_dim=2)
             .add_dependency("weather", "traffic"))

and can come from, and go back to, networkx, PyG, dicts, YAML and JSON (read by
:mod:`graphmeta.taskgraph.reader`); pgmpy networks and tables become task graphs through
:func:`graphmeta.taskgraph_from_pgmpy` and :func:`graphmeta.taskgraph_from_data`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import torch

from ..errors import ConfigError, GraphError, SpecError, closest
from ..learners import LearnerSpec, learner_from, learner_to_dict
from ..validation import keywords_checked
from .reader import GraphStructure, read_graph, read_mapping, read_networkx, require_acyclic
from .subtask import Subtask, subtask_label


class TaskGraph:
    """A DAG of named :class:`Subtask` nodes.

    Node order (``names``) is topological, ties broken by insertion order, so it is stable
    across runs and round trips. Every batched tensor in graphmeta is laid out in this order.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._dag = nx.DiGraph()
        self._order: list[str] | None = None
        self._position: dict[str, int] = {}
        self._structure: dict[str, Any] | None = None

    # ------------------------------------------------------------------ building
    @keywords_checked(where=subtask_label, error=SpecError)
    def add_subtask(
        self,
        name: str,
        *,
        in_dim: int = 0,
        kind: str = "regression",
        out_dim: int = 1,
        num_classes: int | None = None,
        learner: str | LearnerSpec | Mapping[str, Any] = "mlp",
        attrs: Mapping[str, Any] | None = None,
        observed: bool = True,
    ) -> TaskGraph:
        """Add a node; returns the graph for chaining. See :class:`Subtask` for the arguments
        (``attrs``: free-form metadata; ``observed=False``: a latent subtask, never labelled, that
        learns through its children). An unknown keyword is a :class:`~graphmeta.errors.SpecError`
        naming the closest valid one."""
        if name in self._dag:
            raise GraphError(f"duplicate subtask name {name!r}: each subtask needs a unique name")
        # Subtask converts a learner name or mapping too, but its signature promises a spec
        subtask = Subtask(name, in_dim, kind, out_dim, num_classes, learner_from(learner),
                          {} if attrs is None else attrs, observed)
        self._dag.add_node(name, subtask=subtask, index=len(self._dag))
        self._changed()
        return self

    def add_dependency(self, parent: str, child: str) -> TaskGraph:
        """Add the edge ``parent -> child``; returns the graph for chaining.

        Fails at once on an unknown node, a self-loop, or an edge that would close a cycle.
        """
        for node in (parent, child):
            self._require(node)
        if parent == child:
            raise GraphError(f"self-loop on {parent!r}: a subtask cannot depend on itself")
        if nx.has_path(self._dag, child, parent):
            path = nx.shortest_path(self._dag, child, parent)
            cycle = " -> ".join([*path, child])
            raise GraphError(f"dependency {parent!r} -> {child!r} would close the cycle {cycle}")
        self._dag.add_edge(parent, child)
        self._changed()
        return self

    # ------------------------------------------------------------- introspection
    @property
    def names(self) -> list[str]:
        """Subtask names in topological order (ties broken by insertion order)."""
        if self._order is None:
            index = nx.get_node_attributes(self._dag, "index")
            try:
                self._order = list(nx.lexicographical_topological_sort(self._dag, key=index.__getitem__))
                self._position = {name: i for i, name in enumerate(self._order)}
            except nx.NetworkXUnfeasible:
                self.validate()
                raise
        return list(self._order)

    @property
    def edges(self) -> list[tuple[str, str]]:
        """Dependencies ``(parent, child)``, ordered by the children's then parents' position in ``names``."""
        self.names  # noqa: B018 -- refreshes the cached order and positions
        position = self._position
        return sorted(self._dag.edges, key=lambda e: (position[e[1]], position[e[0]]))

    def subtask(self, name: str) -> Subtask:
        """The :class:`Subtask` spec of node ``name``."""
        return self._dag.nodes[self._require(name)]["subtask"]

    def parents(self, name: str) -> list[str]:
        """The parents of ``name``, in ``names`` order."""
        return self._ordered(self._dag.predecessors(self._require(name)))

    def children(self, name: str) -> list[str]:
        """The children of ``name``, in ``names`` order."""
        return self._ordered(self._dag.successors(self._require(name)))

    def levels(self) -> list[list[str]]:
        """Topological generations: level 0 has no parents, level i only parents in levels < i."""
        depth: dict[str, int] = {}
        for name in self.names:
            depth[name] = max((depth[p] + 1 for p in self._dag.predecessors(name)), default=0)
        levels: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for name in self.names:
            levels[depth[name]].append(name)
        return levels

    @property
    def latent(self) -> list[str]:
        """The latent subtasks (``observed=False``), in ``names`` order."""
        return [name for name in self.names if not self.subtask(name).observed]

    def observed_inputs(self, name: str) -> list[str]:
        """The observed nodes whose values node ``name``'s input reads, in ``names`` order: its observed
        parents, and through each latent parent (whose value is its prediction) that parent's own."""
        reads, latent = set(), [name]
        while latent:
            for parent in self._dag.predecessors(latent.pop()):
                if self.subtask(parent).observed:
                    reads.add(parent)
                else:
                    latent.append(parent)
        return self._ordered(iter(reads))

    def input_width(self, name: str) -> int:
        """Own ``in_dim`` plus each parent's width (``out_dim``, or ``num_classes`` for one-hot)."""
        return self.subtask(name).in_dim + sum(self.subtask(p).width for p in self.parents(name))

    def __len__(self) -> int:
        return self._dag.number_of_nodes()

    def __contains__(self, name: object) -> bool:
        return name in self._dag

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskGraph):
            return NotImplemented
        return self is other or (self.name == other.name and self._structure_dict() == other._structure_dict())

    def __repr__(self) -> str:
        kinds: dict[str, int] = {}
        for name in self._dag:
            kind = self.subtask(name).kind
            kinds[kind] = kinds.get(kind, 0) + 1
        mix = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        label = f"{self.name!r}, " if self.name else ""
        edges = self._dag.number_of_edges()
        return (f"TaskGraph({label}{len(self)} subtask{'s' * (len(self) != 1)}, {edges} "
                f"dependenc{'y' if edges == 1 else 'ies'}: {mix or 'empty'})")

    def summary(self) -> str:
        """A table a person can read: one row per subtask, in ``names`` order."""
        header = ("subtask", "kind", "in_dim", "output", "learner", "input width", "parents")
        rows = [header]
        for name in self.names:
            s = self.subtask(name)
            output = f"{s.num_classes} classes" if s.kind == "classification" else f"{s.out_dim} value{'s' if s.out_dim > 1 else ''}"
            output += "" if s.observed else " (latent)"
            rows.append((name, s.kind, str(s.in_dim), output, s.learner.type, str(self.input_width(name)),
                         ", ".join(self.parents(name)) or "-"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join([repr(self), *lines])

    # --------------------------------------------------------------- validation
    def validate(self) -> TaskGraph:
        """Check the whole graph; raise :class:`GraphError` naming the offender. Returns the graph.

        ``add_*`` already reject most mistakes at the line that makes them; this catches what
        only the whole graph shows (an empty graph, a cycle in a graph built from a file or
        from networkx, a Table learner below a regression parent, a latent subtask without an
        observed descendant, which nothing would train).
        """
        if len(self) == 0:
            raise GraphError("the task graph is empty: add at least one subtask")
        require_acyclic(list(self._dag.nodes), list(self._dag.edges))
        for u, v in self._dag.edges:
            self.subtask(v).learner.check_parent(v, self.subtask(u))
        for name in self.latent:
            if not any(self.subtask(d).observed for d in nx.descendants(self._dag, name)):
                where = "a sink" if self._dag.out_degree(name) == 0 else "all its descendants are latent"
                raise GraphError(f"latent subtask {name!r} has no observed descendant ({where}), so no loss would "
                                 "ever reach its learner: observe it (observed=True) or give it an observed child")
        return self

    # -------------------------------------------------------------- conversions
    def with_learner(self, learner: str | LearnerSpec | Mapping[str, Any]) -> TaskGraph:
        """A copy of the graph in which every subtask uses ``learner`` (as for :meth:`add_subtask`)."""
        spec = self.to_dict()
        for subtask in spec["subtasks"].values():
            subtask["learner"] = learner_to_dict(learner_from(learner))
        return TaskGraph.from_dict(spec)

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "subtasks": {name: spec}, "dependencies": [[parent, child], ...]}``."""
        return {
            "name": self.name,
            "subtasks": {name: self.subtask(name).to_dict() for name in self.names},
            "dependencies": [[u, v] for u, v in self.edges],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskGraph:
        """Inverse of :meth:`to_dict`; an unknown key is a :class:`~graphmeta.errors.SpecError`
        (a :class:`GraphError` and a :class:`~graphmeta.errors.ConfigError`) naming it."""
        return cls._from_structure(read_mapping(data))

    def save(self, path: str | Path) -> Path:
        """Write the graph as ``.yaml``/``.yml`` or ``.json`` (chosen by the suffix)."""
        path = Path(path)
        text = _dump(self.to_dict(), path.suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TaskGraph:
        """Read a graph written by :meth:`save` (or by hand)."""
        return cls._from_structure(read_graph(Path(path)))

    def to_networkx(self) -> nx.DiGraph:
        """A ``networkx.DiGraph`` whose node attributes are the subtask specs (see :meth:`Subtask.to_dict`)."""
        dag = nx.DiGraph(name=self.name)
        for name in self.names:
            dag.add_node(name, **self.subtask(name).to_dict())
        dag.add_edges_from(self.edges)
        return dag

    @classmethod
    def from_networkx(cls, dag: nx.DiGraph) -> TaskGraph:
        """Build from a ``networkx.DiGraph``; node attributes named like :class:`Subtask` fields are used."""
        if not isinstance(dag, nx.DiGraph):
            raise GraphError(f"from_networkx needs a networkx.DiGraph, got {type(dag).__name__}")
        return cls._from_structure(read_networkx(dag))

    def to_pyg(self) -> tuple[torch.Tensor, list[str]]:
        """``(edge_index, names)``: a ``[2, E]`` long tensor of parent -> child indices into ``names``."""
        names = self.names
        position = {name: i for i, name in enumerate(names)}
        pairs = [[position[u], position[v]] for u, v in self.edges]
        edge_index = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).t().contiguous()
        return edge_index, names

    @classmethod
    def from_pgmpy(cls, *args: Any, **kwargs: Any) -> TaskGraph:
        """Moved: pgmpy networks become task graphs in :mod:`graphmeta.interop`, a layer above this one."""
        raise ConfigError("TaskGraph.from_pgmpy(model) is now graphmeta.taskgraph_from_pgmpy(model)")

    @classmethod
    def from_data(cls, *args: Any, **kwargs: Any) -> TaskGraph:
        """Moved: structure learning lives in :mod:`graphmeta.interop`, a layer above this one."""
        raise ConfigError("TaskGraph.from_data(table) is now graphmeta.taskgraph_from_data(table)")

    # ----------------------------------------------------------------- helpers
    @classmethod
    def _from_structure(cls, structure: GraphStructure) -> TaskGraph:
        """The graph of a read structure, checked as a whole, so a cycle is reported in full."""
        graph = cls(name=structure.name)
        for name in structure.nodes:
            graph.add_subtask(name, **structure.specs[name])
        graph._dag.add_edges_from(structure.edges)
        graph._changed()
        return graph.validate()

    def _changed(self) -> None:
        """Forget what was derived from the nodes and edges (after adding one)."""
        self._order = None
        self._structure = None

    def _structure_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` less the name, kept until the graph changes: a model compares the
        graph of every batch with its own."""
        if self._structure is None:
            self._structure = {key: value for key, value in self.to_dict().items() if key != "name"}
        return self._structure

    def _require(self, name: str) -> str:
        if name not in self._dag:
            raise GraphError(f"unknown subtask {name!r}{closest(str(name), map(str, self._dag))}")
        return name

    def _ordered(self, nodes: Iterator[str]) -> list[str]:
        self.names  # noqa: B018 -- refreshes the cached order and positions
        return sorted(nodes, key=self._position.__getitem__)


def _dump(data: dict[str, Any], suffix: str) -> str:
    if suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_dump(data, sort_keys=False)
    if suffix == ".json":
        return json.dumps(data, indent=2)
    raise GraphError(f"unknown task graph file type {suffix!r}: use .yaml, .yml or .json")

