"""The GNN learner type: a graph network for subtasks whose inputs are graphs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from ..errors import GraphError, SpecError
from ..validation import Ge, OneOf, checked
from .activations import ACTIVATIONS
from .registry import LearnerSpec, LearnerType, register


@checked(error=SpecError)
@dataclass(frozen=True)
class GNN(LearnerSpec):
    """A graph network for subtasks whose inputs are graphs.

    ``layers`` rounds of GCN-style propagation ``H <- act(D^-1/2 (A + I) D^-1/2 H W)`` with
    ``hidden`` channels, a mean-pool readout, then a linear head on the pooled embedding
    concatenated with the parents' values. The subtask's ``in_dim`` is the node-feature width
    of its input graphs.
    """

    hidden: Annotated[int, Ge(1)] = 32
    layers: Annotated[int, Ge(1)] = 2
    activation: Annotated[str, OneOf(tuple(ACTIVATIONS))] = "relu"

    def check_subtask(self, subtask: Any) -> None:
        if subtask.in_dim < 1:
            raise GraphError(f"subtask {subtask.name!r}: a GNN learner needs in_dim >= 1 (node-feature width)")


register(LearnerType("gnn", GNN, bank=".banks.gnn:GNNBank", takes_graphs=True, marker="h",
                     label="GNN"))
