"""Bayesian networks of known structure, fitted for a new site from a few records after
meta-learning across related sites: :class:`BayesNetMetaLearner` (discrete networks) and
:class:`GaussianNetMetaLearner` (linear-Gaussian networks) return pgmpy models."""

from .gaussian_learner import GaussianNetMetaLearner
from .learner import BayesNetMetaLearner
from .structure import NetworkStructure

__all__ = ["BayesNetMetaLearner", "GaussianNetMetaLearner", "NetworkStructure"]
