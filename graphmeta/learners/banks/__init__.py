"""Learner banks: the torch modules that run every node sharing one learner spec as a single
batched module (one module per learner type: `mlp`, `gnn`, `table`), their shared base
(`bank`), low-rank fast weights (`low_rank`) and `BankSet`, every bank of a graph.

Banks sit above the task graph (they read its column layout); the specs they serve sit below
it, in :mod:`graphmeta.learners`.
"""
