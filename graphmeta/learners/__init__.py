"""Node learners: the registry of learner types (`registry`), one module per type (`mlp`,
`gnn`, `table`: spec and registration), their banks, which run every node of one spec as one
batched module (`mlp_bank`, `gnn_bank`, `table_bank`), and `BankSet`, all banks of a graph."""

from .gnn import GNN
from .mlp import MLP
from .registry import LearnerSpec, LearnerType, learner_from, learner_to_dict, learner_type, register, registered
from .table import Table

__all__ = ["GNN", "MLP", "LearnerSpec", "LearnerType", "Table", "learner_from", "learner_to_dict", "learner_type",
           "register", "registered"]
