"""Bayesian networks of known structure, fitted for a new site from a few records after
meta-learning across related sites: :class:`BayesNetMetaLearner` returns pgmpy models."""

from .learner import BayesNetMetaLearner
from .structure import NetworkStructure

__all__ = ["BayesNetMetaLearner", "NetworkStructure"]
