"""Node learners: the registry of learner types (`registry`), one module per type (`mlp`,
`gnn`, `table`, `linear`: spec and registration), their banks, which run every node of one spec as
one batched module (`banks.mlp`, `banks.gnn`, `banks.table`, `banks.linear`), and `BankSet`, all banks of a graph."""

from .mlp import MLP  # noqa: I001 (first: the registration order is the order pictures and messages list learners in)
from .gnn import GNN
from .linear import Linear
from .registry import LearnerSpec, LearnerType, learner_from, learner_to_dict, learner_type, register, registered
from .table import Table

__all__ = ["GNN", "Linear", "MLP", "LearnerSpec", "LearnerType", "Table", "learner_from", "learner_to_dict",
           "learner_type", "register", "registered"]
