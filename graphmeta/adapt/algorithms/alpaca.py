r"""ALPaCA (Harrison, Sharma & Pavone 2018, "Meta-Learning Priors for Efficient Online Bayesian
Regression"), with a mixture of priors.

The body of each node's network is shared by every task; the output layer is not stepped but
fitted exactly: Bayesian linear regression on the features :math:`\phi(x) \in \mathbb{R}^D`
the output layer reads (the last hidden layer, and a constant 1 for the bias), under a prior
meta-learned per node. With the option ``prior_components = M`` that prior is a mixture of ``M`` Gaussians
over the head :math:`w \in \mathbb{R}^{D \times O}` (each output column independent, with the
same precision), mixing weights :math:`\pi_m`, means :math:`\mu_m` and precisions :math:`P_m`:

.. math::
    p(w) = \sum_m \pi_m\, \mathcal{N}(w; \mu_m, P_m^{-1}), \qquad
    y = \phi(x)^\top w + \varepsilon, \quad \varepsilon \sim \mathcal{N}(0, \sigma^2 I).

On a support set :math:`\Phi \in \mathbb{R}^{K \times D}`, :math:`Y \in \mathbb{R}^{K \times O}`
(the observed shots; a classification node regresses its one-hot labels, as R2-D2 does), each
component's posterior is Gaussian with

.. math::
    A_m = \Phi^\top \Phi / \sigma^2 + P_m, \qquad
    R_m = Y - \Phi \mu_m, \qquad G_m = \Phi^\top R_m / \sigma^2, \qquad
    w_m = \mu_m + A_m^{-1} G_m,

and the components are weighed by their evidence (up to terms equal for every component)

.. math::
    \log p(Y \mid m) = -\tfrac12 \sum_o \big( \lVert R_{m,o} \rVert^2 / \sigma^2
        - G_{m,o}^\top A_m^{-1} G_{m,o} \big) - \tfrac{O}{2} \big( \log\det A_m - \log\det P_m \big),
    \qquad r_m = \operatorname{softmax}_m\big(\log \pi_m + \log p(Y \mid m)\big).

The posterior mean prediction is :math:`\phi(x)^\top \sum_m r_m w_m`, so the adapted head is
:math:`\bar w = \sum_m r_m w_m`: one head per (task, node), like every other algorithm's, which
message passing may then correct. ``M = 1`` is ALPaCA itself; ``M > 1`` lets tasks of different
kinds (different function families) each find their own prior instead of sharing one broad one.

Meta-learned (by the query loss, whose gradient flows through the solve into the body): the
body and the head ``theta`` (the mean :math:`\mu_1`), the other means as offsets
:math:`\mu_m = \mu_1 + \delta_m`, the precisions as Cholesky factors :math:`P_m = L_m L_m^\top`
(lower triangular, diagonal :math:`e^{\ell}`, so :math:`P_m` stays positive definite; ``L = I``
at the start), :math:`\log \sigma^2` (0 at the start) and :math:`\log \pi` (uniform at the start).

The head is fitted at the first inner step and kept; more steps change nothing, so
``inner_steps`` only needs to be 1 (0 keeps the head at ``theta``), and ``inner_lr`` is not
read. Closed-form learners (Table, Linear) keep their own conjugate update.

**Latent subtasks.** A fit needs the node's own targets and its inputs as observed, so a bank
holding a latent node or a child of one (:attr:`BankSet.latent_readers
<graphmeta.learners.banks.bank_set.BankSet.latent_readers>`) adapts its head by gradient steps
instead, ``theta^h <- theta^h - inner_lr * grad L_support``, MAML's step on the head alone (as
ANIL), ``inner_steps`` of them; its prior parameters above are then not used.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from ...data import Split
from ...learners.banks.bank import LearnerBank, Weights
from ...learners.banks.bank_set import BankSet
from ...learners.banks.low_rank import LowRankWeight
from ...validation import PositiveInt
from .base import ALGORITHMS, Algorithm, InnerLoopSettings


@ALGORITHMS.register
class ALPaCA(Algorithm):
    """ALPaCA: the output layer fitted in closed form under a meta-learned mixture prior."""

    name = "alpaca"
    closed_form_head = True

    def __init__(self, banks: BankSet, settings: InnerLoopSettings, *, prior_components: PositiveInt = 1) -> None:
        super().__init__(banks, settings)
        self.components = prior_components
        #: The banks whose heads take gradient steps instead of the fit (module docstring).
        self.stepped_banks = frozenset(tuple(bank.names) for bank, reading in zip(banks, banks.latent_readers)
                                       if reading and not bank.closed_form)
        fitted = {str(index): bank for index, bank in enumerate(banks) if not bank.closed_form}
        self.mean_offsets = nn.ParameterDict({
            index: nn.Parameter(torch.empty(len(bank), self.components - 1, *_head_shape(bank)))
            for index, bank in fitted.items()})
        self.precision_factors = nn.ParameterDict({
            index: nn.Parameter(torch.zeros(len(bank), self.components, _head_shape(bank)[0], _head_shape(bank)[0]))
            for index, bank in fitted.items()})
        self.log_noise = nn.ParameterDict({
            index: nn.Parameter(torch.zeros(len(bank))) for index, bank in fitted.items()})
        self.log_mixture = nn.ParameterDict({
            index: nn.Parameter(torch.zeros(len(bank), self.components)) for index, bank in fitted.items()})
        self.reset_parameters()

    def build_rates(self, banks: BankSet, settings: InnerLoopSettings) -> None:
        """No inner rate is learned: a fitted head reads none, and a stepped head (latent subtasks,
        module docstring) takes ``inner_lr``."""

    def reset_parameters(self) -> None:
        """The means ``mu_m`` (m > 1) spread around ``theta``'s head as ``nn.Linear`` spreads a head;
        ``L = I``, ``sigma^2 = 1``, uniform mixing weights."""
        with torch.no_grad():
            for offsets in self.mean_offsets.values():
                bound = 1.0 / math.sqrt(offsets.shape[-2])
                offsets.uniform_(-bound, bound)
            for parameters in (self.precision_factors, self.log_noise, self.log_mixture):
                for parameter in parameters.values():
                    parameter.zero_()

    def adapting_names(self, bank: LearnerBank) -> tuple[str, ...]:
        return bank.head

    def solves(self, bank: LearnerBank) -> bool:
        """Every bank's head is fitted, except where it takes gradient steps (module docstring)."""
        return bank.closed_form or tuple(bank.names) not in self.stepped_banks

    def solve(self, index: int, bank: LearnerBank, fast: Weights, support: Split) -> Weights:
        """A conjugate bank's own posterior; a gradient bank's fast weights with the head replaced
        by the posterior mean ``sum_m r_m w_m``, fitted on the support rows whose inputs are all
        observed (a missing parent value is never filled into a fit)."""
        if bank.closed_form:
            return super().solve(index, bank, fast, support)
        if support.fill_missing:
            support = replace(support, fill_missing=False)
        key = str(index)
        weight_name, bias_name = bank.head
        mask = bank.example_mask(support).to(fast[bias_name].dtype).unsqueeze(-1)  # [T, N, K, 1]
        features = bank.head_inputs(fast, support)
        phi = torch.cat([features, features.new_ones(*features.shape[:-1], 1)], dim=-1) * mask  # [T, N, K, D]
        targets = (bank.targets(support) * mask).unsqueeze(2)  # [T, N, 1, K, O]
        weight = fast[weight_name]
        weight = weight.dense() if isinstance(weight, LowRankWeight) else weight
        head = torch.cat([weight, fast[bias_name].unsqueeze(-2)], dim=-2)  # [T, N, D, O]
        offsets = self.mean_offsets[key]  # [N, M - 1, D, O]
        means = torch.cat([head.unsqueeze(2), head.unsqueeze(2) + offsets], dim=2)  # [T, N, M, D, O]
        factor = self.precision_factor(key, bank)  # [N, M, D, D]
        noise = self.log_noise[key].exp()[:, None, None, None]  # sigma^2 per node
        phi = phi.unsqueeze(2)  # [T, N, 1, K, D]
        gram = phi.transpose(-1, -2) @ phi  # [T, N, 1, D, D]
        cholesky, failed = torch.linalg.cholesky_ex(gram / noise + factor @ factor.transpose(-1, -2))  # of A_m
        # an A_m not positive definite in this precision (a degenerate prior or noise) makes the posterior
        # NaN, so the run loop's train.on_nonfinite skips the update or stops, as for any non-finite loss
        cholesky = cholesky.masked_fill((failed > 0)[..., None, None], float("nan"))
        residual = targets - phi @ means  # [T, N, M, K, O]
        projected = phi.transpose(-1, -2) @ residual / noise  # G_m [T, N, M, D, O]
        correction = torch.cholesky_solve(projected, cholesky)  # A_m^{-1} G_m
        output_mask = bank.output_mask.to(phi.dtype)[:, None, :]  # [N, 1, O]
        fit = ((residual.square().sum(-2) / noise.squeeze(-1) - (projected * correction).sum(-2))
               * output_mask).sum(-1)  # [T, N, M]
        log_det_a = 2 * cholesky.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        log_det_p = 2 * factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        log_evidence = -0.5 * (fit + output_mask.sum(-1) * (log_det_a - log_det_p))
        responsibilities = torch.softmax(torch.log_softmax(self.log_mixture[key], -1) + log_evidence, dim=-1)
        posterior = ((means + correction) * responsibilities[..., None, None]).sum(2)  # [T, N, D, O]
        # padding stays as it was: it reads nothing and must not look like an update to message passing
        posterior = torch.where(self.real_head(bank), posterior, head)
        return {**fast, weight_name: posterior[..., :-1, :], bias_name: posterior[..., -1, :]}

    @staticmethod
    def real_inputs(bank: LearnerBank) -> torch.Tensor:
        """``[N_b, D]``: which rows of the stacked head ``[W; b]`` are the node's own (the bias's always)."""
        return torch.cat([bank.real_head_inputs, bank.real_head_inputs.new_ones(len(bank), 1)], dim=-1)

    def real_head(self, bank: LearnerBank) -> torch.Tensor:
        """``[N_b, D, O]``: which entries of the stacked head are the node's own."""
        return self.real_inputs(bank)[:, :, None] & bank.output_mask[:, None, :]

    def precision_factor(self, key: str, bank: LearnerBank) -> torch.Tensor:
        """``L_m [N_b, M, D, D]``: the strictly lower part of the parameter, ``exp`` of its diagonal;
        a padded feature's row and column are those of the identity, so its prior stays apart."""
        raw = self.precision_factors[key]
        real = self.real_inputs(bank)
        real = real[:, None, :, None] & real[:, None, None, :]
        lower = torch.tril(raw, diagonal=-1) + torch.diag_embed(raw.diagonal(dim1=-2, dim2=-1).exp())
        return torch.where(real, lower, torch.eye(raw.shape[-1], dtype=raw.dtype, device=raw.device))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, prior_components={self.components}"


def _head_shape(bank: LearnerBank) -> tuple[int, int]:
    """``(D, O)``: the head's inputs with the bias's constant 1, and its outputs."""
    weight = bank.theta[bank.head[0]]
    return weight.shape[1] + 1, weight.shape[2]
