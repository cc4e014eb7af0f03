r"""The empirical-Bayes prior of a Bayesian linear regression from many groups' rows.

A regression (one output of a :class:`~graphmeta.learners.Linear` node, or one variable of a
linear-Gaussian network) regresses on its design rows :math:`z = [1, x_1, \dots, x_P]`, its
coefficients differing from group to group. Everything here reads each group's (site's)
least-squares statistics

.. math::
    G_s = Z_s^\top Z_s, \quad c_s = Z_s^\top y_s, \quad q_s = y_s^\top y_s, \quad n_s,

so

* pooled least squares is :math:`\hat w = (\sum_s G_s)^{-1} \sum_s c_s` (:func:`pooled_fit`);
* ridge toward a fit :math:`w_0` is :math:`(G_s + \lambda I)^{-1} (c_s + \lambda w_0)`
  (:func:`ridge_fit`, :math:`\lambda \to 0` is the site's own least squares, the minimum-norm
  solution where :math:`G_s` is singular);
* a fit's residual sum of squares is :math:`q_s - 2 w^\top c_s + w^\top G_s w`.

:func:`empirical_bayes_prior` turns the per-site fits of many sites into a Normal-Inverse-Gamma
prior by the method of moments, and :func:`marginal_likelihood_priors` refines such priors to the
maximum of the sites' marginal likelihood (type-II maximum likelihood); :func:`empirical_bayes_priors`
does both. A group's coefficients drawn around fixed effects with a covariance (random intercept
and slopes) is a Normal prior of this family, so the result is a linear mixed model's fit by
maximum likelihood, and the posterior mean given a new group's rows its BLUP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: The largest noise shape :math:`a` the empirical-Bayes prior takes (nearly known noise); the
#: Student-t predictive of :math:`2a` degrees of freedom is then Gaussian to within 1e-4 nats.
MAX_SHAPE = 1000.0
#: Eigenvalues of the between-site coefficient covariance are floored at this fraction of its largest.
COVARIANCE_FLOOR = 1e-4
#: The most L-BFGS iterations :func:`marginal_likelihood_priors` takes.
MARGINAL_LIKELIHOOD_ITERATIONS = 100
#: The largest diagonal entry of the precision's Cholesky factor the marginal likelihood may choose
#: (a prior worth at most this squared, 1e4, rows): where the sites agree on a coefficient its
#: maximum is at a between-site variance of 0, which the optimiser would chase without end.
MAX_FACTOR = 100.0
#: The smallest: a prior of standard deviation at most 10 (standardised units) per coefficient. Where
#: a coefficient is not identified within the sites (a feature constant within each site, as its
#: slope then moves with the intercept), the marginal likelihood is flat toward a variance without
#: bound, and a posterior precision that small is singular to a float32 Cholesky.
MIN_FACTOR = 0.1


@dataclass(frozen=True)
class SiteStatistics:
    """One variable's least-squares statistics per site: ``gram [S, D, D]``, ``cross [S, D]``,
    ``squares [S]`` and ``rows [S]`` (module docstring)."""

    gram: np.ndarray
    cross: np.ndarray
    squares: np.ndarray
    rows: np.ndarray

    def residual(self, weights: np.ndarray) -> np.ndarray:
        """``[S]`` residual sums of squares of ``weights`` ``[S, D]`` (or ``[D]`` for every site)."""
        weights = np.broadcast_to(weights, self.cross.shape)
        return (self.squares - 2 * (weights * self.cross).sum(-1)
                + np.einsum("sd,sde,se->s", weights, self.gram, weights))


def pooled_fit(statistics: SiteStatistics) -> np.ndarray:
    """``[D]``: least squares on every site's rows together (minimum norm where singular)."""
    return np.linalg.pinv(statistics.gram.sum(0)) @ statistics.cross.sum(0)


def ridge_fit(statistics: SiteStatistics, toward: np.ndarray, penalty: float) -> np.ndarray:
    r"""``[S, D]``: each site's ridge fit toward ``toward`` ``[D]``, :math:`(G_s + \lambda I)^{-1}
    (c_s + \lambda w_0)`; ``penalty`` 0 gives each site's own (minimum-norm) least squares."""
    if penalty == 0:
        return np.einsum("sde,se->sd", np.linalg.pinv(statistics.gram), statistics.cross)
    eye = np.eye(statistics.gram.shape[-1])
    return np.linalg.solve(statistics.gram + penalty * eye, (statistics.cross + penalty * toward)[..., None])[..., 0]


@dataclass(frozen=True)
class NormalInverseGamma:
    r"""A Normal-Inverse-Gamma prior of one variable, :math:`w \mid s^2 \sim N(m, s^2 \Lambda^{-1})`,
    :math:`s^2 \sim \mathrm{InvGamma}(a, b)`: ``mean [D]``, ``precision [D, D]``, ``shape``, ``scale``."""

    mean: np.ndarray
    precision: np.ndarray
    shape: float
    scale: float


def empirical_bayes_prior(statistics: SiteStatistics) -> NormalInverseGamma:
    r"""The method-of-moments prior of one variable from many sites' own least-squares fits.

    With :math:`\hat w_s` the fit of site :math:`s` and :math:`\hat\sigma^2_s = \mathrm{RSS}_s /
    (n_s - D)` its noise estimate, over the sites with :math:`n_s > D + 1` rows:
    :math:`m` is pooled least squares, :math:`\sigma^2 = \overline{\hat\sigma^2_s}`, the
    coefficients' between-site covariance is :math:`C = \mathrm{cov}_s(\hat w_s) - \sigma^2\,
    \overline{G_s^{-1}}` (the spread of the fits less their estimation noise; eigenvalues floored
    at :data:`COVARIANCE_FLOOR` of the largest), :math:`\Lambda = \sigma^2 C^{-1}` (so
    :math:`s^2 \Lambda^{-1} = C` at :math:`s^2 = \sigma^2`), and the noise's
    :math:`a = 2 + \sigma^4 / V` from the spread :math:`V` of the noise estimates less theirs
    (:math:`2 \sigma^4 / (n_s - D)`), at most :data:`MAX_SHAPE`, :math:`b = a \sigma^2`. With
    fewer than 3 such sites, :math:`\Lambda = I`, :math:`a = 2`, :math:`b = a \sigma^2` from
    the pooled fit's residuals.
    """
    D = statistics.gram.shape[-1]
    mean = pooled_fit(statistics)
    usable = statistics.rows > D + 1
    if usable.sum() < 3:
        noise = max(statistics.residual(mean).sum() / max(statistics.rows.sum() - D, 1), 1e-6)
        return NormalInverseGamma(mean, np.eye(D), 2.0, 2.0 * noise)
    site = SiteStatistics(*(part[usable] for part in (statistics.gram, statistics.cross, statistics.squares,
                                                       statistics.rows)))
    fits = ridge_fit(site, mean, 0.0)
    freedom = site.rows - D
    noises = np.maximum(site.residual(fits), 0.0) / freedom
    noise = max(float(noises.mean()), 1e-6)
    spread = np.cov(fits, rowvar=False).reshape(D, D) - noise * np.linalg.pinv(site.gram).mean(0)
    values, vectors = np.linalg.eigh((spread + spread.T) / 2)
    values = np.maximum(values, COVARIANCE_FLOOR * max(values.max(), 1e-8))
    precision = noise * (vectors / values) @ vectors.T
    excess = noises.var(ddof=1) - (2 * noises**2 / freedom).mean()
    shape = MAX_SHAPE if excess <= 0 else float(np.clip(2 + noise**2 / excess, 2.0, MAX_SHAPE))
    return NormalInverseGamma(mean, precision, shape, shape * noise)


def marginal_likelihood_priors(statistics: Sequence[SiteStatistics], start: Sequence[NormalInverseGamma]
                               ) -> list[NormalInverseGamma]:
    r"""Per variable the Normal-Inverse-Gamma prior of the largest marginal likelihood of every site's
    rows (type-II maximum likelihood), found by L-BFGS from ``start`` (e.g. :func:`empirical_bayes_prior`).

    Under the prior :math:`(m, \Lambda, a, b)` a site's rows have the closed-form marginal likelihood

    .. math::
        \log p(y_s \mid Z_s) = -\tfrac{n_s}{2} \log 2\pi + \tfrac12 \log \frac{|\Lambda|}{|\Lambda + G_s|}
        + a \log b - a_{n} \log b_{n} + \log \Gamma(a_{n}) - \log \Gamma(a),

    with :math:`a_n = a + n_s / 2` and :math:`b_n = b + \frac12 (q_s + m^\top \Lambda m - m_n^\top
    (\Lambda + G_s) m_n)`, :math:`m_n = (\Lambda + G_s)^{-1} (\Lambda m + c_s)`: the conjugate update.
    Their sum over sites is maximised over :math:`m`, the Cholesky factor of :math:`\Lambda` and
    :math:`a \le` :data:`MAX_SHAPE`, :math:`b` (every variable at once: the sum is separable; the
    factor's diagonal at most :data:`MAX_FACTOR` and at least :data:`MIN_FACTOR`). It is
    the likelihood of all the sites' rows under the hierarchical model, so where the sites' coefficients
    are drawn from a prior of this family it is the efficient estimate of that prior; the method of
    moments is not."""
    sizes = [len(prior.mean) for prior in start]
    V, D = len(start), max(sizes)
    real = torch.arange(D) < torch.tensor(sizes)[:, None]  # [V, D]

    gram = torch.zeros(V, len(statistics[0].rows), D, D, dtype=torch.float64)
    cross = torch.zeros(V, len(statistics[0].rows), D, dtype=torch.float64)
    mean = torch.zeros(V, D, dtype=torch.float64)
    lower = torch.eye(D, dtype=torch.float64).repeat(V, 1, 1)
    for v, (site, prior) in enumerate(zip(statistics, start)):
        size = sizes[v]
        gram[v, :, :size, :size] = torch.as_tensor(site.gram)
        cross[v, :, :size] = torch.as_tensor(site.cross)
        mean[v, :size] = torch.as_tensor(prior.mean)
        lower[v, :size, :size] = torch.as_tensor(np.linalg.cholesky(prior.precision))
    squares = torch.as_tensor(np.stack([site.squares for site in statistics]), dtype=torch.float64)
    rows = torch.as_tensor(np.stack([site.rows for site in statistics]), dtype=torch.float64)
    off_diagonal = torch.ones(D, D, dtype=torch.bool).tril(-1) & real[:, :, None] & real[:, None, :]
    cap, factor_cap = math.log(MAX_SHAPE), math.log(MAX_FACTOR)
    shapes = torch.tensor([min(prior.shape, MAX_SHAPE / 2) for prior in start], dtype=torch.float64)
    parameters = {
        "mean": mean.requires_grad_(),
        "lower": lower.masked_fill(~off_diagonal, 0.0).requires_grad_(),
        # log L_ii = cap - softplus(cap - u), log a alike: smooth caps at MAX_FACTOR and MAX_SHAPE
        "log_diagonal": uncapped(torch.where(real, lower.diagonal(dim1=-2, dim2=-1).log(), 0.0).clamp(
            max=factor_cap - 1), factor_cap).requires_grad_(),
        "shape": uncapped(shapes.log(), cap).requires_grad_(),
        # log(b / a), the noise level: the likelihood is flattest along a at a fixed level
        "log_noise": torch.tensor([math.log(prior.scale / prior.shape) for prior in start],
                                  dtype=torch.float64).requires_grad_(),
    }

    def prior_of() -> tuple[torch.Tensor, ...]:
        log_diagonal = (factor_cap - torch.nn.functional.softplus(factor_cap - parameters["log_diagonal"])
                        ).clamp(min=math.log(MIN_FACTOR))
        factor = (parameters["lower"].masked_fill(~off_diagonal, 0.0)
                  + torch.diag_embed(log_diagonal.masked_fill(~real, 0.0).exp()))
        log_shape = cap - torch.nn.functional.softplus(cap - parameters["shape"])
        return parameters["mean"] * real, factor, log_shape.exp(), (log_shape + parameters["log_noise"]).exp()

    def negative_log_likelihood() -> torch.Tensor:
        m, factor, a, b = prior_of()
        precision = factor @ factor.transpose(-1, -2)
        information = precision @ m[..., None]  # [V, D, 1]
        posterior, _ = torch.linalg.cholesky_ex(precision[:, None] + gram)
        combined = information[:, None] + cross[..., None]
        posterior_mean = torch.cholesky_solve(combined, posterior)
        quadratic = (m[..., None] * information).sum((-2, -1))
        explained = (posterior_mean * combined).sum((-2, -1))
        shape_n = a[:, None] + rows / 2
        scale_n = b[:, None] + 0.5 * (squares + quadratic[:, None] - explained).clamp(min=0)
        log_determinants = (2 * factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)[:, None]
                            - 2 * posterior.diagonal(dim1=-2, dim2=-1).log().sum(-1))
        per_site = (0.5 * log_determinants + a[:, None] * b.log()[:, None] - shape_n * scale_n.log()
                    + torch.lgamma(shape_n) - torch.lgamma(a)[:, None])
        return -per_site.mean(-1).sum()

    optimizer = torch.optim.LBFGS(list(parameters.values()), max_iter=MARGINAL_LIKELIHOOD_ITERATIONS,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-8, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = negative_log_likelihood()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        m, factor, a, b = (part.numpy() for part in prior_of())
    return [NormalInverseGamma(m[v, :size], (factor[v] @ factor[v].T)[:size, :size], float(a[v]), float(b[v]))
            for v, size in enumerate(sizes)]


def uncapped(capped: torch.Tensor, cap: float) -> torch.Tensor:
    """The ``u`` of ``capped = cap - softplus(cap - u)`` (``capped < cap``)."""
    return capped + torch.log(-torch.expm1(capped - cap))


def empirical_bayes_priors(statistics: Sequence[SiteStatistics]) -> list[NormalInverseGamma]:
    """Per regression its type-II maximum-likelihood prior: :func:`marginal_likelihood_priors` from
    the method of moments (:func:`empirical_bayes_prior`)."""
    return marginal_likelihood_priors(statistics, [empirical_bayes_prior(s) for s in statistics])
