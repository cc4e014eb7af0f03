"""The task decomposition: `TaskGraph` (subtasks and dependencies), `Subtask` (one node's spec)
and `ColumnLayout` (where each node's features and value live in packed tensors). This layer
knows learner specs (through :mod:`graphmeta.learners.registry`) but nothing of banks,
training or drawing."""

from .columns import ColumnLayout
from .graph import TaskGraph
from .subtask import Subtask

__all__ = ["ColumnLayout", "Subtask", "TaskGraph"]
