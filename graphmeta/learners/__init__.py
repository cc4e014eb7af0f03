"""Node learners: specs (`MLP`, `GNN`) and the banks that run every node of one spec as one
batched module (`mlp_bank`, `gnn_bank`, grouped by `grouping.build_banks`)."""

from .spec import GNN, MLP, learner_from

__all__ = ["GNN", "MLP", "learner_from"]
