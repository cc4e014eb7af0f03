"""Bridges to the libraries users already have: pgmpy (Bayesian networks) and pandas tables.

Everything pgmpy-specific that the families and :mod:`graphmeta.bayesnet` share lives here:

* :mod:`~graphmeta.interop.pgmpy`: the bundled networks, the one rule for a variable's state
  names and parent order, and a network as a task graph (``graphmeta.taskgraph_from_pgmpy``);
* :mod:`~graphmeta.interop.structure_learning`: a task graph learned from a table
  (``graphmeta.taskgraph_from_data``);
* :mod:`~graphmeta.interop.tabular_cpds`: discrete CPDs between pgmpy's ``TabularCPD`` and arrays;
* :mod:`~graphmeta.interop.cpd_table`: :class:`~graphmeta.interop.cpd_table.CPDTable`, every CPD
  of a network in one padded array.

This layer sits above :mod:`graphmeta.taskgraph` and builds :class:`~graphmeta.TaskGraph` s;
nothing here imports the families or :mod:`graphmeta.bayesnet`, and nothing in
:mod:`graphmeta.taskgraph` imports this layer.
"""
