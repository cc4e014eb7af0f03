r"""Least squares on the rows of linear-Gaussian networks: per-site sufficient statistics, the
classical fits built from them, and the empirical-Bayes prior that starts a meta-fit.

Variable :math:`v` of site :math:`s` regresses on its design rows :math:`z = [1, x_{p_1}, \dots,
x_{p_P}]` (a constant, then its parents' values). :func:`site_statistics` gives its statistics
(:class:`~graphmeta.learners.linear_prior.SiteStatistics`) over the rows where the variable and all
its parents are observed; the fits built from them, pooled, per-site ridge and the empirical-Bayes
prior, live in :mod:`graphmeta.learners.linear_prior`, shared with the Linear learner.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..learners.linear_prior import (
    NormalInverseGamma,
    SiteStatistics,
    empirical_bayes_prior,
    empirical_bayes_priors,
    marginal_likelihood_priors,
    pooled_fit,
    ridge_fit,
)

__all__ = ["NormalInverseGamma", "SiteStatistics", "empirical_bayes_prior", "empirical_bayes_priors",
           "marginal_likelihood_priors", "pooled_fit", "ridge_fit", "site_statistics"]


def site_statistics(values: np.ndarray, parents: Sequence[Sequence[int]]) -> list[SiteStatistics]:
    """Per variable ``n`` (columns of ``values [S, R, N]``, NaN where missing), its statistics
    over the rows where it and its ``parents[n]`` (column indices) are observed."""
    statistics = []
    for n, columns in enumerate(parents):
        design = np.concatenate([np.ones_like(values[..., :1]), values[..., list(columns)]], axis=-1)
        target = values[..., n]
        present = ~np.isnan(target) & ~np.isnan(design).any(-1)
        design = np.where(present[..., None], design, 0.0)
        target = np.where(present, target, 0.0)
        statistics.append(SiteStatistics(np.einsum("srd,sre->sde", design, design),
                                         np.einsum("srd,sr->sd", design, target),
                                         (target**2).sum(-1), present.sum(-1)))
    return statistics
