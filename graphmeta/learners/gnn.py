"""The GNN learner type: a graph network for subtasks whose inputs are graphs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import GraphError
from .mlp import ACTIVATIONS
from .registry import LearnerSpec, LearnerType, register


@dataclass(frozen=True)
class GNN(LearnerSpec):
    """A graph network for subtasks whose inputs are graphs.

    ``layers`` rounds of GCN-style propagation ``H <- act(D^-1/2 (A + I) D^-1/2 H W)`` with
    ``hidden`` channels, a mean-pool readout, then a linear head on the pooled embedding
    concatenated with the parents' values. The subtask's ``in_dim`` is the node-feature width
    of its input graphs.
    """

    hidden: int = 32
    layers: int = 2
    activation: str = "relu"

    def __post_init__(self) -> None:
        for key in ("hidden", "layers"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise GraphError(f"GNN {key} must be a positive integer, got {value!r}")
        if self.activation not in ACTIVATIONS:
            raise GraphError(f"unknown GNN activation {self.activation!r}; choose one of {ACTIVATIONS}")

    def check_subtask(self, subtask: Any) -> None:
        if subtask.in_dim < 1:
            raise GraphError(f"subtask {subtask.name!r}: a GNN learner needs in_dim >= 1 (node-feature width)")


register(LearnerType("gnn", GNN, bank="graphmeta.learners.gnn_bank:GNNBank", takes_graphs=True, marker="h",
                     label="GNN"))
