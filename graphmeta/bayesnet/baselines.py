r"""Classical estimates of a new site's CPDs, in the packed layout of :class:`NetworkStructure`.

All take the support counts :math:`n(u, v)` (``[T, columns, width]``, see
:meth:`NetworkStructure.counts`) and return tables of the same shape.

* :func:`dirichlet_posterior`: the posterior mean under a Dirichlet prior with pseudo-counts
  :math:`\beta(u, v)`, :math:`P(v \mid u) = (\beta(u, v) + n(u, v)) / (\beta(u) + n(u))`;
  with :math:`\beta = \alpha\, \theta^*` the Bayes-optimal estimate of the ``dirichlet`` family.
* :class:`PooledEmpiricalBayes`: the same with :math:`\beta = c\, \hat\theta`, :math:`\hat\theta`
  the pooled frequencies of related sites and :math:`c` chosen on validation sites.
* :func:`latent_posterior`: for the ``latent`` family, :math:`\theta(z) = \mathrm{softmax}(\log
  \theta^* + s\, W z)` at the MAP :math:`\hat z = \arg\max_z \log p(\text{support} \mid z) - \|z\|^2 / 2`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .structure import NetworkStructure


def dirichlet_posterior(counts: np.ndarray, pseudo_counts: np.ndarray) -> np.ndarray:
    """``(pseudo_counts + counts) / column sums``; padded entries (0 in both) stay 0."""
    total = pseudo_counts + counts
    return total / total.sum(-1, keepdims=True)


def smoothed_frequencies(structure: NetworkStructure, counts: np.ndarray) -> np.ndarray:
    r"""``[..., columns, width]`` Jeffreys-smoothed frequencies :math:`(n(u, v) + 1/2) / (n(u) + |v|/2)`,
    0 on padding: every state keeps some probability however rare it was."""
    real = ~structure.table.padding()
    return dirichlet_posterior(counts, 0.5 * real)


@dataclass(frozen=True)
class PooledEmpiricalBayes:
    r"""The Dirichlet prior :math:`c\, \hat\theta` fitted to related sites (see the module docstring)."""

    frequencies: np.ndarray  # [columns, width], theta-hat
    concentration: float  # c

    @classmethod
    def fit(cls, structure: NetworkStructure, train: np.ndarray, val: np.ndarray, shots: int | Sequence[int],
            grid: np.ndarray | None = None) -> PooledEmpiricalBayes:
        r""":math:`\hat\theta` from all rows of ``train [T, R, N]``; :math:`c` from ``grid`` (default
        :math:`10^{-1} \dots 10^{4}`) maximising the log-likelihood of rows ``K:`` of every ``val``
        table given its first ``K`` rows, averaged over the support sizes ``K`` in ``shots``."""
        frequencies = smoothed_frequencies(structure, structure.counts(train).sum(0))
        grid = np.logspace(-1, 4, 51) if grid is None else np.asarray(grid, dtype=np.float64)
        scores = np.zeros(len(grid))
        for k in np.atleast_1d(shots):
            counts, query = structure.counts(val[:, :k]), structure.complete_cells(val[:, k:])
            scores += [structure.cell_log_likelihood(dirichlet_posterior(counts, c * frequencies), query).mean()
                       for c in grid]
        return cls(frequencies, float(grid[int(np.argmax(scores))]))

    def tables(self, counts: np.ndarray) -> np.ndarray:
        return dirichlet_posterior(counts, self.concentration * self.frequencies)


def latent_posterior(log_theta_star: np.ndarray, weights: np.ndarray, scale: float, counts: np.ndarray,
                     iterations: int = 100) -> np.ndarray:
    r"""The CPDs :math:`\theta(\hat z)` of every task at its MAP latent (see the module docstring).

    ``log_theta_star [columns, width]`` (``-inf`` on padding), ``weights [columns, width, d]``,
    ``counts [T, columns, width]``. The tasks are independent, so one L-BFGS run on the sum
    of their objectives finds every :math:`\hat z_t`.
    """
    base = torch.as_tensor(log_theta_star, dtype=torch.float64)
    loadings = torch.as_tensor(weights, dtype=torch.float64) * scale
    observed = torch.as_tensor(counts, dtype=torch.float64)
    real = torch.isfinite(base)
    z = torch.zeros(observed.shape[0], loadings.shape[-1], dtype=torch.float64, requires_grad=True)

    def log_tables(latent: torch.Tensor) -> torch.Tensor:
        logits = base + torch.einsum("cwd,td->tcw", loadings, latent)
        return torch.where(real, logits.log_softmax(-1), torch.zeros_like(logits))

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = -(observed * log_tables(z)).sum() + 0.5 * z.pow(2).sum()
        loss.backward()
        return loss

    optimizer = torch.optim.LBFGS([z], max_iter=iterations, tolerance_grad=1e-9, line_search_fn="strong_wolfe")
    optimizer.step(closure)
    with torch.no_grad():
        return torch.where(real, log_tables(z).exp(), torch.zeros_like(base)).numpy()
