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
the posterior (:meth:`LinearBank.statistics`); its correction :math:`c` moves the prior mean,
and the posterior under the moved prior, :math:`M_n = \Lambda_n^{-1} (\Lambda (M + c) + Z^\top Y)`
(and :math:`b_n` with it), is read off the plain one with one solve, so as the node's rows grow its
estimate still goes to its own least-squares fit (:meth:`LinearBank.corrected`).

Task factors (``spec.task_factors = r``): every output also has loadings :math:`A_o` ``[D, r]``
(``loadings`` ``[D, O, r]``), its prior mean :math:`m_o + A_o u` for the task's factor :math:`u
\sim N(0, I_r)`, shared by the graph's Linear nodes. Given the noise at :math:`s_o^2 = b_o / a_o`,
a node's rows are Gaussian in :math:`u`, and what they say of it is read off the plain update
(:meth:`LinearBank.factor_evidence`):

.. math::
    H = \sum_o \frac{A_o^\top (\Lambda - \Lambda \Lambda_n^{-1} \Lambda) A_o}{s_o^2}, \qquad
    g = \sum_o \frac{A_o^\top \Lambda (M_n - M)_o}{s_o^2},

(:math:`\Lambda - \Lambda \Lambda_n^{-1} \Lambda = Z^\top (I + Z \Lambda^{-1} Z^\top)^{-1} Z`),
so :math:`u`'s posterior is :math:`N(P^{-1} \sum g, P^{-1})`, :math:`P = I + \sum H` over the
nodes; the node's posterior under the prior mean moved to :math:`M + A \hat u` is
:meth:`LinearBank.corrected`'s (:meth:`LinearBank.factor_shifted`). The coefficients' mean is then
the exact posterior mean under that noise; the predictive leaves :math:`u`'s own spread out.

Empirical-Bayes start (:meth:`LinearBank.empirical_bayes_start`): given many groups' rows (one
task per group), the prior of every node output starts at the maximum of the groups' marginal
likelihood under it (:func:`~graphmeta.learners.linear_prior.empirical_bayes_priors`), a linear
mixed model's maximum-likelihood fit; meta-training then only refines it.

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
from ...taskgraph import ColumnLayout, TaskGraph
from ..linear import Linear
from ..linear_prior import SiteStatistics, empirical_bayes_priors
from .bank import LearnerBank, Weights, gather_columns, packed_source
from .partition import cheapest_banks

#: The fixed cost of one more Linear bank in a meta-step (its own ops, their launches and their
#: backward), in per-node design numbers :math:`D (D + O)`. On arth150-gaussian (107 nodes, designs
#: 1 to 7 wide) it splits off the 11 nodes of 3 to 6 parents, which made a meta-step about 20%
#: faster than one bank; smaller costs (3 or 4 banks) were slower again.
BANK_COST = 1000
#: The standard deviation of the task-factor loadings at the start (module docstring): small, so
#: that where sites share no factor the prior stays the empirical-Bayes start's, which is then the
#: best a validation finds. On arth150-gaussian's independent sites (107 nodes, 160 training sites)
#: loadings started at 0.1 fitted the training sites' chance directions and lost 0.45 nats per row to
#: ridge toward the pooled fit at K = 1; started at 0.01 they did not (``benchmarks/gaussian_fewshot.py``).
LOADING_START = 0.01


class LinearBank(LearnerBank):
    """The Linear nodes ``names`` of ``graph`` sharing ``spec``."""

    head = ("mean",)
    closed_form = True

    @classmethod
    def partition(cls, graph: TaskGraph, names: Sequence[str]) -> list[list[str]]:
        r"""The Linear nodes ``names`` as the node lists of several banks (each in ``names`` order),
        narrowest designs first, so that padding stays bounded (:func:`~.partition.cheapest_banks`):
        node :math:`n`'s size is its design width :math:`D_n` (``1 + `` its input columns) and output
        width :math:`O_n`; the per-row work of its predictive and posterior grows as
        :math:`D (D + O)`, and a bank costs :data:`BANK_COST` more."""
        layout = ColumnLayout(graph)
        size = {name: (1 + len(layout.input_columns(name)), graph.subtask(name).width) for name in names}
        return cheapest_banks(names, size, lambda s: s[0] * (s[0] + s[1]), BANK_COST)

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
        self.register_buffer("diagonal_positions", torch.nonzero(diagonal).flatten(), persistent=False)
        self.register_buffer("lower_index", rows * D + cols, persistent=False)
        # packing reads [L flattened (D * D), log L_ii (D)]; unpacking reads [packed (P), L_ii (D), 0]
        self.register_buffer("packing_index", torch.where(diagonal, D * D + rows, rows * D + cols), persistent=False)
        unpacking = torch.full((D, D), len(rows) + D)
        unpacking[rows, cols] = torch.where(diagonal, len(rows) + rows, torch.arange(len(rows)))
        self.register_buffer("unpacking_index", unpacking.flatten(), persistent=False)
        N = len(self.names)
        self.theta = nn.ParameterDict({
            "mean": nn.Parameter(torch.empty(N, D, O)),
            "precision_factor": nn.Parameter(torch.empty(N, len(rows))),
            "log_shape": nn.Parameter(torch.empty(N, O)),
            "log_scale": nn.Parameter(torch.empty(N, O)),
        })
        self.task_factors = spec.task_factors
        if self.task_factors:
            self.theta["loadings"] = nn.Parameter(torch.empty(N, D, O, self.task_factors))
        self.num_statistics = len(rows) + D * O + O  # Z^T Z (packed), Z^T Y, diag Y^T Y
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""The spec's prior: :math:`M = 0`, :math:`\Lambda` = ``prior_precision`` :math:`I`
        (:math:`\log L_{ii} = \frac12 \log` ``prior_precision``), :math:`a` = ``noise_shape``,
        :math:`b` = ``noise_scale``, loadings drawn from :math:`N(0, \text{LOADING\_START}^2)` (at 0,
        the factor's gradient would be 0 too); padded entries 0."""
        with torch.no_grad():
            self.theta["mean"].zero_()
            factor = self.theta["precision_factor"].zero_()
            factor[:, self.diagonal_positions] = 0.5 * math.log(self.spec.prior_precision) * self.real_inputs
            self.theta["log_shape"].copy_(math.log(self.spec.noise_shape) * self.output_mask)
            self.theta["log_scale"].copy_(math.log(self.spec.noise_scale) * self.output_mask)
            if self.task_factors:
                self.theta["loadings"].normal_(0.0, LOADING_START).mul_(self.real_mean[..., None])

    def empirical_bayes_start(self, groups: Split) -> None:
        r"""Set every node's prior to its type-II maximum likelihood over ``groups``, a split of one
        task per group holding all its rows (``DataFrameFamily.grouped_rows("train")``).

        Output :math:`o` of node :math:`n` reads, per group :math:`s`, the statistics
        :math:`G_s = Z_s^\top Z_s`, :math:`c_s = Z_s^\top y_{s,o}`, :math:`q_s = y_{s,o}^\top y_{s,o}`
        and :math:`n_s` of the group's counting rows, and its prior :math:`(m_o, \Lambda_o, a_o, b_o)`
        maximises :math:`\sum_s \log p(y_{s,o} \mid Z_s)` (closed form under the conjugate prior;
        :func:`~graphmeta.learners.linear_prior.empirical_bayes_priors`). The outputs share one
        precision here, so a node of several outputs takes the mean of theirs. A spec with
        ``empirical_bayes=False`` keeps its prior."""
        if not self.spec.empirical_bayes:
            return
        with torch.no_grad():
            counting = self.example_mask(groups).to(torch.float64)[..., None]  # [S, N_b, K, 1]
            design = self.design(groups).to(torch.float64) * counting
            targets = self.targets(groups).to(torch.float64) * counting
            gram = (design.transpose(-1, -2) @ design).cpu().numpy()  # [S, N_b, D, D]
            cross = (design.transpose(-1, -2) @ targets).cpu().numpy()  # [S, N_b, D, O]
            squares = targets.square().sum(-2).cpu().numpy()  # [S, N_b, O]
            rows = counting.sum((-2, -1)).cpu().numpy()  # [S, N_b]
            sizes = self.real_inputs.sum(-1).tolist()
            outputs = self.output_mask.sum(-1).tolist()
            pairs = [(b, o) for b in range(len(self.names)) for o in range(outputs[b])]
            priors = empirical_bayes_priors([
                SiteStatistics(gram[:, b, :sizes[b], :sizes[b]], cross[:, b, :sizes[b], o], squares[:, b, o], rows[:, b])
                for b, o in pairs])
            precision = torch.eye(self.design_width, dtype=torch.float64).repeat(len(self.names), 1, 1)
            for b, size in enumerate(sizes):
                precision[b, :size, :size] = 0
            theta = self.theta
            for (b, o), prior in zip(pairs, priors):
                size = sizes[b]
                theta["mean"][b, :size, o] = torch.as_tensor(prior.mean, dtype=theta["mean"].dtype)
                theta["log_shape"][b, o] = math.log(prior.shape)
                theta["log_scale"][b, o] = math.log(prior.scale)
                precision[b, :size, :size] += torch.as_tensor(prior.precision) / outputs[b]
            theta["precision_factor"].copy_(self.packed(torch.linalg.cholesky(precision)))

    # ----------------------------------------------------------------------- prediction
    def forward(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """The predictive means ``z^T M`` ``[T, N_b', K, O]``."""
        return self.design(split, nodes) @ self._mean(weights, nodes)

    def losses(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None, accuracy: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per (task, node) the mean over counting rows of the predictive negative log-likelihood
        (see the module docstring) ``[T, N_b']``; accuracy NaN (regression)."""
        loss = self.row_nll(self.predictive(weights, split, nodes), split, nodes)
        return loss, (torch.full_like(loss.detach(), math.nan) if accuracy else None)

    def predictive(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None
                   ) -> torch.distributions.StudentT:
        """The posterior predictive ``[T, N_b', K, O]``: per output a Student-t with ``2 a`` degrees
        of freedom, location ``z^T M`` and squared scale ``(b / a)(1 + z^T Lambda^-1 z)`` (module docstring)."""
        design = self.design(split, nodes)
        factor = self.factor(self._rows(shared_over_tasks(weights["precision_factor"]), nodes), nodes)
        whitening = torch.linalg.solve_triangular(factor, torch.eye(self.design_width, dtype=factor.dtype,
                                                                    device=factor.device), upper=False)  # L^-1
        spread = 1 + (design @ whitening.transpose(-1, -2)).square().sum(-1, keepdim=True)  # v = 1 + z^T Lambda^-1 z
        shape = self._rows(weights["log_shape"], nodes).exp()[..., None, :]
        scale = self._rows(weights["log_scale"], nodes).exp()[..., None, :]
        return PosteriorPredictive(shape, design @ self._mean(weights, nodes), (scale / shape * spread).sqrt())

    def design(self, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """The design rows ``z = [1, x, parents]`` ``[T, N_b', K, D]``, padded with 0 (built once per split)."""
        if nodes is None:
            return split.derived((self, "design"), lambda: self._design(split, self.input_index))
        return self._design(split, self.input_index[nodes])

    @staticmethod
    def _design(split: Split, index: torch.Tensor) -> torch.Tensor:
        inputs = gather_columns(packed_source(split), index)
        return torch.cat([inputs.new_ones(*inputs.shape[:-1], 1), inputs], dim=-1)

    def factor(self, packed: torch.Tensor, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """The lower-triangular ``L`` ``[..., D, D]`` of a packed ``precision_factor`` ``[..., N_b', P]``
        (padded rows and columns: the identity's)."""
        packed = packed.masked_fill(~(self.real_factor if nodes is None else self.real_factor[nodes]), 0.0)
        diagonal = packed[..., self.diagonal_positions].exp()
        source = torch.cat([packed, diagonal, packed.new_zeros(*packed.shape[:-1], 1)], dim=-1)
        return source[..., self.unpacking_index].unflatten(-1, (self.design_width, self.design_width))

    def packed(self, factor: torch.Tensor) -> torch.Tensor:
        """The packed ``precision_factor`` ``[..., P]`` of a lower-triangular ``L`` ``[..., D, D]``
        (:meth:`factor` undone)."""
        source = torch.cat([factor.flatten(-2), factor.diagonal(dim1=-2, dim2=-1).log()], dim=-1)
        return source[..., self.packing_index]

    # ------------------------------------------------------- adaptation and message passing
    def posterior(self, weights: Weights, split: Split) -> Weights:
        """The conjugate update (see the module docstring) from the counting support rows; padded
        entries as in ``weights``."""
        D = self.design_width
        counting = self.example_mask(split).to(split.values.dtype)[..., None]
        rows = torch.cat([self.design(split), self.targets(split)], dim=-1) * counting  # [Z | Y]
        moments = rows.transpose(-1, -2) @ rows  # [[Z^T Z, Z^T Y], [Y^T Z, Y^T Y]]
        gram, cross = moments[..., :D, :D], moments[..., :D, D:]
        squares = moments[..., D:, D:].diagonal(dim1=-2, dim2=-1)
        precision, information, quadratic = self._natural(weights)
        # positive definite by construction (Lambda = L L^T with exp(log L_ii) > 0, plus a Gram matrix)
        factor, _ = torch.linalg.cholesky_ex(precision + gram)
        information = information + cross
        mean = torch.cholesky_solve(information, factor)
        explained = (mean * information).sum(-2)  # diag M_n^T Lambda_n M_n
        shots = gram[..., 0, 0, None]  # (Z^T Z)_00 = K, the constant column
        log_shape = torch.log(weights["log_shape"].exp() + shots / 2)
        # the increment is a sum of squares; the clamp only removes rounding
        log_scale = torch.log(weights["log_scale"].exp() + 0.5 * (squares + quadratic - explained).clamp(min=0))
        return {
            "mean": torch.where(self.real_mean, mean, weights["mean"]),
            "precision_factor": torch.where(self.real_factor, self.packed(factor), weights["precision_factor"]),
            "log_shape": torch.where(self.output_mask, log_shape, weights["log_shape"]),
            "log_scale": torch.where(self.output_mask, log_scale, weights["log_scale"]),
        }

    def statistics(self, initial: Weights, adapted: Weights) -> torch.Tensor:
        r"""The sufficient statistics ``[T, N_b, num_statistics]``, as data: :math:`Z^\top Z =
        \Lambda_n - \Lambda` (packed), :math:`Z^\top Y = \Lambda_n M_n - \Lambda M` and
        :math:`\operatorname{diag} Y^\top Y = 2 (b_n - b) - \operatorname{diag}(M^\top \Lambda M)
        + \operatorname{diag}(M_n^\top \Lambda_n M_n)`, the update read backwards."""
        with torch.no_grad():
            prior_precision, prior_information, prior_quadratic = self._natural(initial)
            precision, information, quadratic = self._natural(adapted)
            gram = (precision - prior_precision).flatten(-2)[..., self.lower_index]
            squares = 2 * (adapted["log_scale"].exp() - initial["log_scale"].exp()) - prior_quadratic + quadratic
            return torch.cat([gram, (information - prior_information).flatten(-2), squares], dim=-1)

    def corrected(self, initial: Weights, adapted: Weights, corrections: Mapping[str, torch.Tensor],
                  statistics: torch.Tensor | None) -> Weights:
        r"""The posterior under the prior mean moved by the correction, ``M + c``: the update of the
        module docstring with :math:`M + c` in place of :math:`M` changes only

        .. math::
            M_n \mapsto M_n + \delta, \quad \delta = \Lambda_n^{-1} \Lambda c, \qquad
            b_n \mapsto b_n + \tfrac12 \operatorname{diag}\big((\Lambda c)^\top (2 (M - M_n) + c - \delta)\big),

        so it is read off ``adapted`` (``statistics`` are not needed) with one triangular solve."""
        change = corrections["mean"].masked_fill(~self.real_mean, 0.0)
        prior_factor = self.factor(shared_over_tasks(initial["precision_factor"]))
        shift = prior_factor @ (prior_factor.transpose(-1, -2) @ change)  # Lambda c
        delta = torch.cholesky_solve(shift, self.factor(adapted["precision_factor"]))
        prior_mean, mean = self._mean(initial), self._mean(adapted)
        prior_scale = initial["log_scale"].exp()
        increment = (adapted["log_scale"].exp() - prior_scale
                     + 0.5 * (shift * (2 * (prior_mean - mean) + change - delta)).sum(-2))
        # the increment is b_n - b of a posterior, a sum of squares; the clamp only removes rounding
        log_scale = torch.log(prior_scale + increment.clamp(min=0))
        return {**adapted, "mean": torch.where(self.real_mean, mean + delta, adapted["mean"]),
                "log_scale": torch.where(self.output_mask, log_scale, adapted["log_scale"])}

    def factor_evidence(self, initial: Weights, adapted: Weights) -> tuple[torch.Tensor, torch.Tensor]:
        r"""What the support rows say of the task factor (module docstring): :math:`\sum H`
        ``[T, r, r]`` and :math:`\sum g` ``[T, r]`` over the bank's nodes and outputs."""
        loadings = self._loadings(initial)
        prior_precision, _, _ = self._natural(initial)
        weighted = torch.einsum("...de,...eor->...dor", prior_precision, loadings)  # Lambda A
        solved = torch.cholesky_solve(weighted.flatten(-2), self.factor(adapted["precision_factor"]))
        solved = solved.unflatten(-1, weighted.shape[-2:])  # Lambda_n^-1 Lambda A
        curvature = (torch.einsum("...dor,...dos->...ors", loadings, weighted)
                     - torch.einsum("...dor,...dos->...ors", weighted, solved))
        moved = self._mean(adapted) - self._mean(initial)  # M_n - M
        information = torch.einsum("...dor,...do->...or", weighted, moved)
        noise_precision = (initial["log_shape"] - initial["log_scale"]).exp()[..., None]  # a / b = 1 / s^2
        return ((curvature * noise_precision[..., None]).sum((-4, -3)),
                (information * noise_precision).sum((-3, -2)))

    def factor_shifted(self, initial: Weights, adapted: Weights, factor: torch.Tensor) -> tuple[Weights, Weights]:
        r"""The prior with its mean moved to :math:`M + A u` for the task factor ``factor`` ``[T, r]``
        (its first ``r`` numbers), and the posterior under it (:meth:`corrected`)."""
        shift = (self._loadings(initial) * factor[:, None, None, None, :self.task_factors]).sum(-1)
        return ({**initial, "mean": initial["mean"] + shift},
                self.corrected(initial, adapted, {"mean": shift}, None))

    def _natural(self, weights: Weights) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r""":math:`\Lambda` ``[T, N_b, D, D]``, :math:`\Lambda M` ``[T, N_b, D, O]`` and
        :math:`\operatorname{diag}(M^\top \Lambda M)` ``[T, N_b, O]`` of ``weights`` (padding left out;
        ``[1, N_b, ...]`` where the weights are the same for every task)."""
        factor = self.factor(shared_over_tasks(weights["precision_factor"]))
        precision = factor @ factor.transpose(-1, -2)
        mean = self._mean(weights)
        information = precision @ mean
        return precision, information, (mean * information).sum(-2)

    def _loadings(self, weights: Weights) -> torch.Tensor:
        """``A`` ``[T, N_b, D, O, r]`` with its padded entries 0."""
        return shared_over_tasks(weights["loadings"]).masked_fill(~self.real_mean[..., None], 0.0)

    def _mean(self, weights: Weights, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """``M`` ``[T, N_b', D, O]`` with its padded entries 0."""
        real_mean = self.real_mean if nodes is None else self.real_mean[nodes]
        return self._rows(shared_over_tasks(weights["mean"]), nodes).masked_fill(~real_mean, 0.0)

    @staticmethod
    def _rows(weight: torch.Tensor, nodes: torch.Tensor | None) -> torch.Tensor:
        return weight if nodes is None else weight[:, nodes]

    def extra_repr(self) -> str:
        return (f"nodes={len(self.names)}, design_width={self.design_width}, output_width={self.output_width}, "
                f"prior_precision={self.spec.prior_precision}, noise_shape={self.spec.noise_shape}, "
                f"noise_scale={self.spec.noise_scale}"
                + (f", task_factors={self.task_factors}" if self.task_factors else ""))


class PosteriorPredictive(torch.distributions.StudentT):
    r"""The Student-t of :math:`2 a` degrees of freedom (``shape`` :math:`a`, ``[T, N_b', 1, O]``),
    location ``loc`` and scale ``scale`` (``[T, N_b', K, O]``), whose log-density

    .. math::
        \log \Gamma(a + \tfrac12) - \log \Gamma(a) - \tfrac12 \log(2 \pi a) - \log \sigma
        - (a + \tfrac12) \log\Big(1 + \frac{(y - \mu)^2}{2 a \sigma^2}\Big)

    takes its log-gamma terms once per (task, node, output) rather than per row, as
    :class:`torch.distributions.StudentT` would after broadcasting its degrees of freedom."""

    def __init__(self, shape: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__(2 * shape, loc, scale, validate_args=False)
        self.half_df = shape

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        shape = self.half_df
        normaliser = torch.lgamma(shape + 0.5) - torch.lgamma(shape) - 0.5 * torch.log(2 * math.pi * shape)
        standardised = (value - self.loc) / self.scale
        return normaliser - self.scale.log() - (shape + 0.5) * torch.log1p(standardised.square() / (2 * shape))


def shared_over_tasks(weight: torch.Tensor) -> torch.Tensor:
    """``weight [T, N_b, ...]`` as ``[1, N_b, ...]`` where it is one tensor expanded over the task axis
    (stride 0, as the prior is before adaptation), so what is computed from it is computed once and
    broadcast over the tasks; else ``weight`` itself."""
    return weight[:1] if weight.dim() > 1 and weight.shape[0] > 1 and weight.stride(0) == 0 else weight

