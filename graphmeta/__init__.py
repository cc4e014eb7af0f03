"""graphmeta: graph-structured meta-learning on PyTorch."""

from .errors import CheckpointError, ConfigError, DataError, GraphError, GraphMetaError, TrainingError
from .adapted import AdaptedGraph
from .data import TaskBatch
from .graph import TaskGraph
from .learners.spec import GNN, MLP
from .model import GraphMetaLearner
from .subtask import Subtask

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "ConfigError", "DataError", "GNN", "GraphError", "GraphMetaError", "MLP",
    "AdaptedGraph", "GraphMetaLearner", "Subtask", "TaskBatch", "TaskGraph", "TrainingError",
]
