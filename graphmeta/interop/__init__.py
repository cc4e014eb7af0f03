"""Bridges to the libraries users already have: pgmpy (Bayesian networks) and pandas tables.

Everything pgmpy-specific that the families and :mod:`graphmeta.bayesnet` share lives here:

* :mod:`~graphmeta.interop.pgmpy`: the bundled networks, the one rule for a variable's state
  names and parent order, and a network as task graph data (``TaskGraph.from_pgmpy``);
* :mod:`~graphmeta.interop.structure_learning`: a task graph learned from a table (``TaskGraph.from_data``);
* :mod:`~graphmeta.interop.tabular_cpds`: discrete CPDs between pgmpy's ``TabularCPD`` and arrays;
* :mod:`~graphmeta.interop.cpd_table`: :class:`~graphmeta.interop.cpd_table.CPDTable`, every CPD
  of a network in one padded array.

Nothing here imports the families or :mod:`graphmeta.bayesnet`; :mod:`~graphmeta.interop.pgmpy`
and :mod:`~graphmeta.interop.structure_learning` return plain data and leave building the
:class:`~graphmeta.TaskGraph` to it, so ``graph.py`` can use them without an import cycle.
"""
