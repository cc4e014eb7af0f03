"""Bridges to the libraries users already have: pgmpy (Bayesian networks) and pandas tables."""
