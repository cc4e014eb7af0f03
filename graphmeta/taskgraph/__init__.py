"""The task decomposition: `TaskGraph` (subtasks and dependencies), `Subtask` (one node's spec)
and `ColumnLayout` (where each node's features and value live in packed tensors); the one
graph reader (:mod:`~graphmeta.taskgraph.reader`) turns every form a graph is given in into
plain data. This layer knows learner specs (through :mod:`graphmeta.learners.registry`) but
nothing of banks, training, drawing or pgmpy (:mod:`graphmeta.interop` sits above it)."""

from .columns import ColumnLayout
from .graph import TaskGraph
from .subtask import Subtask

__all__ = ["ColumnLayout", "Subtask", "TaskGraph"]
