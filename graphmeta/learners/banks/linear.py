r"""`LinearBank`: every :class:`~graphmeta.learners.Linear` node of a graph as one batched
Bayesian linear regression, adapted by the conjugate Normal-Inverse-Gamma update.

Node ``n`` reads the design row :math:`z = [1, x, y_{p_1}, \dots, y_{p_P}]` of ``D_n`` numbers
(padded to the bank's widest, ``D``). Its fast weights, ``[T, N_b, ...]``, are the
Normal-Inverse-Gamma parameters of its ``O`` outputs (padded to the widest, ``O``):

* ``mean`` ``[D, O]``: :math:`M`, the mean of the weights :math:`w_o` (one column per output);
* ``precision_factor`` ``[D (D + 1) / 2]``: the lower-triangular Cholesky factor :math:`L` of
  the precision :math:`\Lambda = L L^\top` (shared by the outputs, scaled by each one's noise),
  its rows packed one after the other (row ``i`` holds :math:`L_{i0} \dots L_{ii}`), the
  diagonal as :math:`\log L_{ii}`, so every value is a valid precision;
* ``log_shape``, ``log_scale`` ``[O]``: :math:`\log a_o` and :math:`\log b_o` of the noise.

Adaptation is the exact posterior given the counting support rows :math:`Z` ``[K, D]`` and
:math:`Y` ``[K, O]`` (:meth:`LinearBank.posterior`), from their sufficient statistics alone:

.. math::
    \Lambda_n = \Lambda + Z^\top Z, \quad M_n = \Lambda_n^{-1} (\Lambda M + Z^\top Y), \quad
    a_n = a + K / 2, \quad
    b_n = b + \tfrac12 \operatorname{diag}(Y^\top Y + M^\top \Lambda M - M_n^\top \Lambda_n M_n),

one Cholesky factorisation and solve for all (task, node) pairs. :math:`K` is
:math:`(Z^\top Z)_{00}`, since the first column of :math:`Z` is the constant 1. With more rows
than parameters :math:`M_n` goes to the node's least-squares fit; with fewer (a singular
:math:`Z^\top Z`) the prior keeps :math:`\Lambda_n` positive definite.

The node predicts with the posterior predictive, per output a Student-t with :math:`2 a`
degrees of freedom, location :math:`z^\top M` and scale :math:`\sigma^2 = (b / a)(1 + z^\top
\Lambda^{-1} z)`; :meth:`LinearBank.forward` gives its mean :math:`z^\top M`, and a node's
loss (:meth:`LinearBank.losses`) is its negative log-likelihood per row, summed over the
outputs and averaged over the counting rows:

.. math::
    -\log p(y \mid z) = \log \Gamma(a) - \log \Gamma(a + \tfrac12) + \tfrac12 \log(2 \pi b v)
    + (a + \tfrac12) \log\Big(1 + \frac{(y - z^\top M)^2}{2 b v}\Big), \quad v = 1 + z^\top \Lambda^{-1} z.

After adaptation it is the posterior-predictive log-likelihood of the query rows given the
support, what meta-training of the prior maximises.

Message passing reads the sufficient statistics :math:`[Z^\top Z, Z^\top Y, \operatorname{diag}
Y^\top Y]` (the Gram matrix packed like ``precision_factor``), recovered from the prior and
the posterior (:meth:`LinearBank.statistics`); its correction :math:`c` moves the prior mean
and the posterior is redone from the statistics, :math:`M_n = \Lambda_n^{-1} (\Lambda (M + c)
+ Z^\top Y)` (and :math:`b_n` with it), so as the node's rows grow its estimate still goes to
its own least-squares fit (:meth:`LinearBank.corrected`).

Padding: padded design columns read 0 and their rows and columns of :math:`L` read those of the
identity, so they never contribute; padded outputs are left out of the loss; and every update
leaves the padded entries of the fast weights as they were.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ...data import Split
from ...taskgraph import TaskGraph
from .bank import LearnerBank, Weights, gather_columns, packed_source
from ..linear import Linear


class LinearBank(LearnerBank):
    """The Linear nodes ``names`` of ``graph`` sharing ``spec``."""

    head = ("mean",)
    closed_form = True

    def __init__(self, graph: TaskGraph, names: Sequence[str], spec: Linear) -> None:
        super().__init__(graph, names)
        self.spec = spec
        columns = [self.layout.input_columns(name) for name in self.names]
        self.design_width = 1 + max(len(c) for c in columns)
        D, O = self.design_width, self.output_width
        pad = self.layout.feature_width + self.layout.value_width
        self.register_buffer("input_index", self.layout.gather_index(self.names, self.layout.input_columns, D - 1, pad),
                             persistent=False)
        real_inputs = torch.arange(D) < torch.tensor([1 + len(c) for c in columns])[:, None]
        rows, cols = torch.tril_indices(D, D)
        diagonal = rows == cols
        self.register_buffer("real_inputs", real_inputs, persistent=False)
        self.register_buffer("real_mean", real_inputs[:, :, None] & self.output_mask[:, None, :], persistent=False)
        self.register_buffer("real_factor", real_inputs[:, rows] & real_inputs[:, cols], persistent=False)
        self.register_buffer("real_off_diagonal", self.real_factor[:, ~diagonal], persistent=False)
        self.register_buffer("diagonal_positions", torch.nonzero(diagonal).flatten(), persistent=False)
        self.register_buffer("off_diagonal_positions", torch.nonzero(~diagonal).flatten(), persistent=False)
        self.register_buffer("lower_index", rows * D + cols, persistent=False)
        self.register_buffer("off_diagonal_index", (rows * D + cols)[~diagonal], persistent=False)
        N = len(self.names)
        self.theta = nn.ParameterDict({
            "mean": nn.Parameter(torch.empty(N, D, O)),
            "precision_factor": nn.Parameter(torch.empty(N, len(rows))),
            "log_shape": nn.Parameter(torch.empty(N, O)),
            "log_scale": nn.Parameter(torch.empty(N, O)),
        })
        self.num_statistics = len(rows) + D * O + O  # Z^T Z (packed), Z^T Y, diag Y^T Y
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""The spec's prior: :math:`M = 0`, :math:`\Lambda` = ``prior_precision`` :math:`I`
        (:math:`\log L_{ii} = \frac12 \log` ``prior_precision``), :math:`a` = ``noise_shape``,
        :math:`b` = ``noise_scale``; padded entries 0."""
        with torch.no_grad():
            self.theta["mean"].zero_()
            factor = self.theta["precision_factor"].zero_()
            factor[:, self.diagonal_positions] = 0.5 * math.log(self.spec.prior_precision) * self.real_inputs
            self.theta["log_shape"].copy_(math.log(self.spec.noise_shape) * self.output_mask)
            self.theta["log_scale"].copy_(math.log(self.spec.noise_scale) * self.output_mask)

    # ----------------------------------------------------------------------- prediction
    def forward(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """The predictive means ``z^T M`` ``[T, N_b', K, O]``."""
        return self.design(split, nodes) @ self._mean(weights, nodes)

    def losses(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None, accuracy: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per (task, node) the mean over counting rows of the predictive negative log-likelihood
        (see the module docstring) ``[T, N_b']``; accuracy NaN (regression)."""
        design = self.design(split, nodes)
        factor = self.factor(self._rows(weights["precision_factor"], nodes), nodes)
        whitened = torch.linalg.solve_triangular(factor, design.transpose(-1, -2), upper=False)  # L^-1 z
        spread = 1 + whitened.square().sum(-2)[..., None]  # v = 1 + z^T Lambda^-1 z, [T, N', K, 1]
        shape = self._rows(weights["log_shape"], nodes).exp()[..., None, :]
        scale = self._rows(weights["log_scale"], nodes).exp()[..., None, :]
        residual = self.targets(split, nodes) - design @ self._mean(weights, nodes)
        per_output = (torch.lgamma(shape) - torch.lgamma(shape + 0.5) + 0.5 * torch.log(2 * math.pi * scale * spread)
                      + (shape + 0.5) * torch.log1p(residual.square() / (2 * scale * spread)))
        output_mask = self.output_mask if nodes is None else self.output_mask[nodes]
        per_row = (per_output * output_mask[:, None, :]).sum(-1)
        loss = (per_row * self.shot_weights(split, nodes, per_row.dtype)).sum(-1)
        return loss, (torch.full_like(loss.detach(), math.nan) if accuracy else None)

    def design(self, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """The design rows ``z = [1, x, parents]`` ``[T, N_b', K, D]``, padded with 0."""
        index = self.input_index if nodes is None else self.input_index[nodes]
        inputs = gather_columns(packed_source(split), index)
        return torch.cat([inputs.new_ones(*inputs.shape[:-1], 1), inputs], dim=-1)

    def factor(self, packed: torch.Tensor, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """The lower-triangular ``L`` ``[..., D, D]`` of a packed ``precision_factor`` ``[..., N_b', P]``
        (padded rows and columns: the identity's)."""
        real_inputs = self.real_inputs if nodes is None else self.real_inputs[nodes]
        real_off_diagonal = self.real_off_diagonal if nodes is None else self.real_off_diagonal[nodes]
        log_diagonal = packed.index_select(-1, self.diagonal_positions).masked_fill(~real_inputs, 0.0)
        off_diagonal = packed.index_select(-1, self.off_diagonal_positions).masked_fill(~real_off_diagonal, 0.0)
        D = self.design_width
        lower = off_diagonal.new_zeros(*off_diagonal.shape[:-1], D * D).index_copy(
            -1, self.off_diagonal_index, off_diagonal).unflatten(-1, (D, D))
        return lower + torch.diag_embed(log_diagonal.exp())

    # ------------------------------------------------------- adaptation and message passing
    def posterior(self, weights: Weights, split: Split) -> Weights:
        """The conjugate update (see the module docstring) from the counting support rows."""
        counting = self.example_mask(split).to(split.values.dtype)[..., None]
        design = self.design(split) * counting
        targets = self.targets(split) * counting
        gram = design.transpose(-1, -2) @ design
        cross = design.transpose(-1, -2) @ targets
        return self._updated(weights, gram, cross, targets.square().sum(-2))

    def statistics(self, initial: Weights, adapted: Weights) -> torch.Tensor:
        r"""The sufficient statistics ``[T, N_b, num_statistics]``, as data: :math:`Z^\top Z =
        \Lambda_n - \Lambda` (packed), :math:`Z^\top Y = \Lambda_n M_n - \Lambda M` and
        :math:`\operatorname{diag} Y^\top Y = 2 (b_n - b) - \operatorname{diag}(M^\top \Lambda M)
        + \operatorname{diag}(M_n^\top \Lambda_n M_n)`, the update read backwards."""
        with torch.no_grad():
            prior_precision, prior_information, prior_quadratic = self._natural(initial)
            precision, information, quadratic = self._natural(adapted)
            gram = (precision - prior_precision).flatten(-2).index_select(-1, self.lower_index)
            squares = 2 * (adapted["log_scale"].exp() - initial["log_scale"].exp()) - prior_quadratic + quadratic
            return torch.cat([gram, (information - prior_information).flatten(-2), squares], dim=-1)

    def corrected(self, initial: Weights, adapted: Weights, corrections: Mapping[str, torch.Tensor],
                  statistics: torch.Tensor | None) -> Weights:
        """The posterior under the prior mean moved by the correction, ``M + c``, from ``statistics``."""
        D, O = self.design_width, self.output_width
        packed_gram, cross, squares = statistics.split([self.lower_index.numel(), D * O, O], dim=-1)
        lower = packed_gram.new_zeros(*packed_gram.shape[:-1], D * D).index_copy(
            -1, self.lower_index, packed_gram).unflatten(-1, (D, D))
        gram = lower + lower.transpose(-1, -2) - torch.diag_embed(lower.diagonal(dim1=-2, dim2=-1))
        prior = {**initial, "mean": initial["mean"] + corrections["mean"]}
        return self._updated(prior, gram, cross.unflatten(-1, (D, O)), squares)

    def _updated(self, prior: Weights, gram: torch.Tensor, cross: torch.Tensor, squares: torch.Tensor) -> Weights:
        """The posterior of ``prior`` given the statistics ``Z^T Z [T, N_b, D, D]``, ``Z^T Y [T, N_b, D, O]``
        and ``diag Y^T Y [T, N_b, O]``; padded entries as in ``prior``."""
        precision, information, quadratic = self._natural(prior)
        # positive definite by construction (Lambda = L L^T with exp(log L_ii) > 0, plus a Gram matrix)
        factor, _ = torch.linalg.cholesky_ex(precision + gram)
        information = information + cross
        mean = torch.cholesky_solve(information, factor)
        explained = (mean * information).sum(-2)  # diag M_n^T Lambda_n M_n
        shots = gram[..., 0, 0, None]  # (Z^T Z)_00 = K, the constant column
        log_shape = torch.log(prior["log_shape"].exp() + shots / 2)
        # the increment is a sum of squares; the clamp only removes rounding
        log_scale = torch.log(prior["log_scale"].exp() + 0.5 * (squares + quadratic - explained).clamp(min=0))
        packed = torch.zeros_like(prior["precision_factor"]).index_copy(
            -1, self.off_diagonal_positions, factor.flatten(-2).index_select(-1, self.off_diagonal_index))
        packed = packed.index_copy(-1, self.diagonal_positions, factor.diagonal(dim1=-2, dim2=-1).log())
        return {
            "mean": torch.where(self.real_mean, mean, prior["mean"]),
            "precision_factor": torch.where(self.real_factor, packed, prior["precision_factor"]),
            "log_shape": torch.where(self.output_mask, log_shape, prior["log_shape"]),
            "log_scale": torch.where(self.output_mask, log_scale, prior["log_scale"]),
        }

    def _natural(self, weights: Weights) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r""":math:`\Lambda` ``[T, N_b, D, D]``, :math:`\Lambda M` ``[T, N_b, D, O]`` and
        :math:`\operatorname{diag}(M^\top \Lambda M)` ``[T, N_b, O]`` of ``weights`` (padding left out)."""
        factor = self.factor(weights["precision_factor"])
        projected = factor.transpose(-1, -2) @ self._mean(weights)  # L^T M
        return factor @ factor.transpose(-1, -2), factor @ projected, projected.square().sum(-2)

    def _mean(self, weights: Weights, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """``M`` ``[T, N_b', D, O]`` with its padded entries 0."""
        real_mean = self.real_mean if nodes is None else self.real_mean[nodes]
        return self._rows(weights["mean"], nodes).masked_fill(~real_mean, 0.0)

    @staticmethod
    def _rows(weight: torch.Tensor, nodes: torch.Tensor | None) -> torch.Tensor:
        return weight if nodes is None else weight[:, nodes]

    def extra_repr(self) -> str:
        return (f"nodes={len(self.names)}, design_width={self.design_width}, output_width={self.output_width}, "
                f"prior_precision={self.spec.prior_precision}, noise_shape={self.spec.noise_shape}, "
                f"noise_scale={self.spec.noise_scale}")
