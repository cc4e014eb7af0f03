"""Node learners: specs (`MLP`, `GNN`, `Table`) and the banks that run every node of one spec as
one batched module (`mlp_bank`, `gnn_bank`, `table_bank`, grouped by `grouping.BankSet`)."""

from .spec import GNN, MLP, Table, learner_from

__all__ = ["GNN", "MLP", "Table", "learner_from"]
