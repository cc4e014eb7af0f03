"""graphmeta: graph-structured meta-learning on PyTorch.

The names below import on first use, so ``graphmeta --help`` and ``import graphmeta`` stay
quick; torch-geometric loads only with the model.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DistributionShiftWarning,
    GraphError,
    GraphMetaError,
    RunStorageError,
    SpecError,
    TrainingError,
)

__version__ = "0.1.0"

_LAZY = {
    "AdaptedGraph": "adapted_graph", "DataFrameFamily": "families.dataframe", "GNN": "learners",
    "GaussianNetMetaLearner": "bayesnet",
    "GraphMetaLearner": "model", "Hook": "train", "Linear": "learners", "MLP": "learners",
    "MonolithicFamily": "families.monolithic", "OnlineMetaLearner": "train",
    "Subtask": "taskgraph", "Table": "learners",
    "TaskBatch": "data", "TaskGraph": "taskgraph", "Trainer": "train", "draw": "viz.draw",
    "load_family": "families.cards", "taskgraph_from_data": "interop.structure_learning",
    "taskgraph_from_pgmpy": "interop.pgmpy",
}
#: Subpackages that import on first use as ``graphmeta.<name>``; ``graphmeta.tune(config)`` runs a study.
_LAZY_MODULES = ("tune",)

__all__ = ["CheckpointError", "ConfigError", "DataError", "DistributionShiftWarning", "GraphError", "GraphMetaError",
           "RunStorageError", "SpecError", "TrainingError", *_LAZY, *_LAZY_MODULES]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name not in _LAZY:
        raise AttributeError(f"module 'graphmeta' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
