"""Learner specs and the banks that run every node of one learner type as one batched module."""

from .spec import GNN, MLP, learner_from

__all__ = ["GNN", "MLP", "learner_from"]
